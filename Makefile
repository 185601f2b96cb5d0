# Two commands (see README "Quick start"); the logic lives in scripts/ and `manage.py serve`.
#   make run    the service in development: a local Redis if none answers, web + indexer, a dev service key
#   make test   the whole test suite (ARGS="..." is passed to pytest)
# `make run` installs only what running needs (requirements.txt); `make test` adds requirements-dev.txt.
SHELL := /bin/bash
VENV := .venv
ARGS ?=

.PHONY: run test venv venv-runtime

venv-runtime:
	@scripts/bootstrap.sh runtime

venv:
	@scripts/bootstrap.sh dev

run: venv-runtime
	$(VENV)/bin/python manage.py serve --local-redis

test: venv
	$(VENV)/bin/python scripts/run_tests.py $(ARGS)
