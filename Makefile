# rehab — the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv system-deps lint unit

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable '.[dev]'
	touch $@

venv: $(BIN)/.installed

# SQLite database + embedded SQLite broker: web server, Celery worker and beat, no servers.
demo: venv
	$(BIN)/rehab demo run

# PostgreSQL, Redis and chromium binaries for the tests (the tests start their own servers).
system-deps:
	./.ci/system-deps

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy rehab worker config
	$(BIN)/mypy --strict --follow-imports=silent rehab/domain

# One pytest worker per core (pytest-xdist): most tests wait on PostgreSQL, a Celery worker,
# SMTP or the browser, so two run in about half the time of one. Each worker starts its own
# PostgreSQL and Redis; worksteal evens out the few long tests.
test: venv system-deps lint
	$(BIN)/python -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)
