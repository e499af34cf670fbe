"""docs/deploy.md names only files, make targets and alerts that exist."""

from __future__ import annotations

import re

import yaml

from .support import MONITORING_DIR, REPO_ROOT

DEPLOY = REPO_ROOT / "docs" / "deploy.md"
PATH_PREFIXES = ("docker/", "k8s/", "docs/", "tests/", "fhir_gateway/", ".env", ".ci/")


def test_every_repository_path_in_the_guide_exists() -> None:
    text = DEPLOY.read_text()
    # `.env` is the operator's own copy of `.env.example`, never committed.
    paths = {
        p for p in re.findall(r"`([^`\s]+)`", text) if p.startswith(PATH_PREFIXES) and p != ".env"
    }
    assert paths
    missing = sorted(p for p in paths if not (REPO_ROOT / p.rstrip("/")).exists())
    assert not missing


def test_make_targets_and_alerts_in_the_guide_exist() -> None:
    text = DEPLOY.read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z0-9-]+):", makefile, re.MULTILINE))
    for command in re.findall(r"^make ([a-z0-9 -]+?)\s*(?:#|$)", text, re.MULTILINE):
        assert set(command.split()) <= targets, command
    rules = yaml.safe_load((MONITORING_DIR / "alert-rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    named = set(re.findall(r"`(FhirGateway\w+)`", text))
    assert named == alerts
