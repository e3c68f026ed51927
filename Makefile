# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB ?= lab
SITE ?= sample_sites/hyperv-to-azure.toml

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	@test -f $(LAB)/vault.db || $(BIN)/srlab --lab $(LAB) init --site $(SITE)
	$(BIN)/srlab --lab $(LAB) tui

test: install-test
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(LAB)
