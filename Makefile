# Newcomer commands: `make install`, `make demo`, `make test`.
PY := $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: install demo test test-slow test-lowest lint format bench

install:
	bash scripts/install-system-deps.sh
	python3 -m venv .venv
	.venv/bin/pip install -e '.[dev]'

demo:
	$(PY) -m distill demo

test:
	$(PY) -m pytest -q

test-slow:
	$(PY) -m pytest -q -m slow

# The lowest versions pyproject.toml allows for every direct dependency (uv's lowest-direct
# resolution; dependencies of dependencies stay newest), then the fast tests. A separate venv;
# not part of CI (it downloads a second torch). LITERT is left out: it pins its own versions.
LOWEST := .venv-lowest
test-lowest:
	python3 -m venv $(LOWEST)
	$(LOWEST)/bin/pip install -q uv
	$(LOWEST)/bin/uv pip install --python $(LOWEST)/bin/python --resolution lowest-direct \
		-e '.[all,test]'
	$(LOWEST)/bin/python -m pip freeze > $(LOWEST)/versions.txt
	$(LOWEST)/bin/python -m pytest -q $(TESTS)

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
