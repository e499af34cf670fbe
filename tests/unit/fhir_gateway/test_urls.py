from __future__ import annotations

import pytest

from fhir_gateway.store.urls import asyncpg_dsn, sqlalchemy_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/fhir",
        "postgresql+asyncpg://u:p@db:5432/fhir",
        "postgres://u:p@db:5432/fhir",
    ],
)
def test_both_url_forms_are_accepted(url: str) -> None:
    assert asyncpg_dsn(url) == "postgresql://u:p@db:5432/fhir"
    assert sqlalchemy_url(url) == "postgresql+asyncpg://u:p@db:5432/fhir"


def test_unix_socket_url_survives() -> None:
    url = "postgresql://postgres:@/postgres?host=/tmp/sock"
    assert sqlalchemy_url(url) == "postgresql+asyncpg://postgres:@/postgres?host=/tmp/sock"
