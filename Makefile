# Everything needs only Python 3.11+ and make: the first target that needs it creates .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test fuzz lint proto bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: start the gateway on the embedded default (SQLite + in-process bus) with the example worker
run: $(STAMP)
	$(BIN)/fastagentic dev examples.demo:app

## test: the whole suite (unit, integration, end-to-end), then lint
test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint

## fuzz: the property-based fuzz suite (tests/fuzz) at length: FUZZ_EXAMPLES examples a property, from a
##       random seed it prints (make fuzz FUZZ_SEED=<seed> draws the same examples again); FUZZ_ARGS go to pytest
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	@seed=$(if $(FUZZ_SEED),$(FUZZ_SEED),$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')); \
	echo "fuzz: $(FUZZ_EXAMPLES) examples a property, seed $$seed"; \
	FASTAGENTIC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FASTAGENTIC_FUZZ_RANDOM=1 \
		$(BIN)/python -m pytest tests/fuzz --timeout=3600 --hypothesis-seed=$$seed $(FUZZ_ARGS)

## lint: ruff (lint + format check) and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## proto: regenerate the committed gRPC stubs from proto/
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=sdk --pyi_out=sdk --grpc_python_out=sdk \
		proto/fastagentic/v1/worker.proto

## bench: the performance harness
bench: $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
