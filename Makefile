# Developer and operator shortcuts. `make` lists them.
.DEFAULT_GOAL := help
.PHONY: help install lint test bench serve k8s-validate promtool

VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= .data
LOCK := $(if $(wildcard requirements.lock),-c requirements.lock,)

help: ## Show the targets
	@grep -E '^[a-z0-9][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

install: ## Create the virtualenv and install the project with its dev tools
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q $(LOCK) -e '.[dev]'

lint: ## ruff check, ruff format --check and mypy --strict
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

test: ## The whole test suite
	$(PYTHON) -m pytest -q

bench: ## Every benchmark in bench/ (each prints its figures and its baseline)
	@set -e; for script in bench/*.py; do echo "+ $$script"; PYTHONPATH=. $(PYTHON) $$script; done

serve: ## Run the server with an embedded PostgreSQL and the demo cohort
	$(VENV)/bin/fhir-gateway serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) --demo

k8s-validate: ## Render every kustomize overlay and validate it (Kubernetes schemas, CRDs, policies)
	$(PYTHON) -m pytest -q tests/ops/test_ops_k8s.py

promtool: ## promtool check and unit-test the alert rules, check the Compose Prometheus config
	cd k8s/monitoring && promtool check rules alert-rules.yaml && promtool test rules alert-rules.test.yaml
	promtool check config --syntax-only docker/prometheus/prometheus.yml
