# Newcomer commands: `make install`, `make demo`, `make test`.
PY := $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: install demo test test-slow lint format bench

install:
	python3 -m venv .venv
	.venv/bin/pip install -e '.[dev]'

demo:
	$(PY) -m distill demo

test:
	$(PY) -m pytest -q

test-slow:
	$(PY) -m pytest -q -m slow

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
