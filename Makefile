# The two commands of the README:  `make demo`  and  `make test`.
# Both create or refresh the project-local .venv first (idempotent, no root).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= auto

.PHONY: setup demo test doctor clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml tools/verilator
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	install -m 755 tools/verilator $(BIN)/verilator
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/magma-llama demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS)

doctor: $(STAMP)
	$(BIN)/magma-llama doctor

clean:
	rm -rf build/* .pytest_cache
