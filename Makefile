# Slipway: `make run` serves the app on http://127.0.0.1:8000; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-compose bench lint security services images test-image clean

$(STAMP): requirements.txt requirements-dev.txt $(wildcard agent/requirements.txt)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements-dev.txt $(if $(wildcard agent/requirements.txt),-r agent/requirements.txt)
	@touch $(STAMP)

run: $(STAMP)
	@bash scripts/install-system.sh run
	@bash scripts/run.sh

services:
	@bash scripts/install-system.sh test
	@bash scripts/services.sh test

# Workspace images: the tiny busybox test image (seconds) and, with `images`, the real one.
test-image: services
	@bash docker/images/build-test-image.sh

images: test-image
	@bash docker/images/build-workspace-image.sh

test: $(STAMP) images
	@bash scripts/test.sh "$(TEST_DATABASE_URL)" $(PYTEST_ARGS); status=$$?; \
	  bash scripts/services.sh swarm-restore; exit $$status

test-sqlite: $(STAMP)
	@bash scripts/test.sh "" $(PYTEST_ARGS)

# The production bundle (docker/compose.yml) built and run with docker-compose; its own target (minutes).
test-compose: $(STAMP) images
	$(PY) -m pytest -m compose -p no:cacheprovider tests/test_compose_bundle.py $(PYTEST_ARGS)

bench: $(STAMP) images
	@status=0; for b in bench/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; \
	  $(PY) "$$b" || { echo "!! $$b: a bar was missed"; status=1; }; done; exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# ruff's S rules, pip-audit over the pins, Schemathesis against the live API (about two minutes)
security: $(STAMP)
	@bash scripts/security.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
