"""Several uvicorn workers, each accepting connections on a listening socket of its own.

uvicorn's workers share one listening socket, and the worker that wakes first accepts every
connection waiting on it. Clients that open their keep-alive connections together (a bulk loader
with four connections, an EHR's pool after a restart) then all land on one worker about half the
time (BENCHMARKS.md, "Ingest"), which serves them on one core while the other workers idle.
With ``SO_REUSEPORT`` every worker listens on a socket of its own and the kernel spreads new
connections over them.

uvicorn's supervisor (start, health checks, restarts, signals) is kept: it hands each worker the
listening sockets by pickling them, so it is handed a ``ReusePortListener`` instead, which turns
into a fresh socket of the worker's own when the worker unpickles it.
"""

from __future__ import annotations

import socket
from typing import Any, cast

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


class PortInUseError(OSError):
    """Another server already listens on the address."""


def supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listen_reuseport(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other sockets with the option may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class ReusePortListener:
    """Stands in for the listening socket uvicorn passes to each worker: unpickled in the
    worker, it is a new socket bound with ``SO_REUSEPORT`` (uvicorn then listens on it)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return listen_reuseport, (self.host, self.port)


def claim_port(host: str, port: int) -> None:
    """Fail in the supervisor, before any worker starts, when the address is taken.

    A listener without ``SO_REUSEPORT`` makes the bind fail. One with it (a second instance of
    this server) would not: the two would quietly split the connections. A connection attempt
    finds that one.
    """
    listen_reuseport(host, port).close()
    try:
        probe = socket.create_connection((_WILDCARDS.get(host, host), port), timeout=1.0)
    except OSError:
        return
    probe.close()
    raise PortInUseError(f"another server already listens on {host}:{port}")


def run_workers(config: Any) -> None:
    """Run ``config.workers`` uvicorn workers under uvicorn's supervisor, each on its own
    ``SO_REUSEPORT`` socket."""
    from uvicorn.supervisors import Multiprocess

    claim_port(config.host, config.port)
    listeners = cast(list[socket.socket], [ReusePortListener(config.host, config.port)])
    Multiprocess(config, sockets=listeners).run()
