"""Normalise database URLs so operators may write either ``postgresql://`` or the driver form."""

from __future__ import annotations


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg itself understands."""
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL with the asyncpg driver named explicitly."""
    return "postgresql+asyncpg://" + asyncpg_dsn(url)[len("postgresql://") :]
