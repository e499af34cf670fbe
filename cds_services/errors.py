"""The one error type CDS handlers raise; the router turns it into an HTTP status and message.

CDS Hooks clients treat an empty card list as "nothing to say", so failures must never be
disguised as one: they are 400 (bad request), 403, 404, 412 (data unavailable) or 5xx.
"""

from __future__ import annotations


class CdsError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> CdsError:
    return CdsError(400, message)


def forbidden(message: str) -> CdsError:
    return CdsError(403, message)


def not_found(message: str) -> CdsError:
    return CdsError(404, message)


def precondition_failed(message: str) -> CdsError:
    return CdsError(412, message)
