# Two commands (see README "Quick start"); the logic lives in scripts/ and `manage.py serve`.
#   make run    the service with embedded defaults (local Redis if none answers, web + indexer)
#   make test   the whole test suite (ARGS="..." is passed to pytest)
SHELL := /bin/bash
VENV := .venv
ARGS ?=

.PHONY: run test venv

venv:
	@scripts/bootstrap.sh

run: venv
	$(VENV)/bin/python manage.py serve

test: venv
	$(VENV)/bin/python scripts/run_tests.py $(ARGS)
