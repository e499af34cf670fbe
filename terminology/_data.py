"""Reads the CSV tables under ``data/`` once; comment lines (``#``) carry each table's source."""

import csv
from collections.abc import Iterator
from importlib import resources


def read_rows(name: str) -> Iterator[dict[str, str]]:
    """Yield one dict per data row of ``data/<name>``, skipping the citation comment lines."""
    text = resources.files("terminology").joinpath("data", name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    yield from csv.DictReader(lines)
