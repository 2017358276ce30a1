# Entry points: `make demo` and `make test` build .venv from requirements.lock
# (exact versions, checked against their hashes) on a machine that has only
# python3 and make. `make lock` regenerates the lock from pyproject.toml's
# ranges; `make test-latest` runs the suite on the newest versions the ranges
# allow, in .venv-latest.
PYTHON     ?= python3
UV_VERSION := 0.13.9
LOCK       := requirements.lock
VENV       := .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed
LATEST     := .venv-latest
# uv lives in its own venv: `uv pip sync` makes .venv hold exactly the lock
TOOLS      := .uv
UV         := $(TOOLS)/bin/uv
# uv reads none of pip's configuration (a machine's index or constraint files);
# a uv.toml of the user's would change what gets installed, so none is read either
UVFLAGS    := --no-config

.PHONY: demo test test-latest lock lock-upgrade bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(LOCK) pyproject.toml | $(UV)
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(UV) pip sync $(UVFLAGS) --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install $(UVFLAGS) --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	@echo "== 1. current prompt (v3) and refund desk on examples/quickstart: gates and the consistency probe pass"
	cd examples/quickstart && ../../$(BIN)/pytest --failmodes -p no:cacheprovider -rs
	@echo
	@echo "== 2. candidate prompt (v4): the gate must catch its regression (non-zero exit expected)"
	cd examples/quickstart && ../../$(BIN)/pytest --failmodes -p no:cacheprovider \
	    --failmodes-dataset data/candidate_traces.jsonl -q --no-header --tb=line; \
	  status=$$?; \
	  if [ $$status -eq 1 ]; then echo "demo: the gate caught the candidate's breach (exit 1), as expected"; \
	  else echo "demo: expected exit 1 from the candidate run, got $$status"; exit 1; fi
	@echo
	@echo "== 3. the candidate build of the refund desk: a consistency probe must catch decisions that change with capitalisation or a contraction (non-zero exit expected)"
	cd examples/quickstart && HARBOR_BUILD=candidate ../../$(BIN)/pytest --failmodes -p no:cacheprovider \
	    -k refund_decision_consistent -q --no-header --failmodes-max-examples=3; \
	  status=$$?; \
	  if [ $$status -eq 1 ]; then echo "demo: the probe caught the candidate's inconsistent refund decisions (exit 1), as expected"; \
	  else echo "demo: expected exit 1 from the probe run, got $$status"; exit 1; fi

test: $(STAMP)
	$(BIN)/pytest -n 2

# The lock is universal (every platform, Python >= 3.10) and keeps the versions it
# already has where the ranges still allow them: after adding a dependency to
# pyproject.toml, `make lock` adds it (and what it needs) and moves nothing else.
lock: | $(UV)
	$(UV) pip compile $(UVFLAGS) pyproject.toml --extra test --universal --python-version 3.10 \
	    --generate-hashes --custom-compile-command "make lock" --quiet -o $(LOCK)

# Every locked version moves to the newest the ranges allow (run make test after it).
lock-upgrade: | $(UV)
	$(UV) pip compile $(UVFLAGS) pyproject.toml --extra test --universal --python-version 3.10 \
	    --generate-hashes --custom-compile-command "make lock" --quiet --upgrade -o $(LOCK)

# Drift found on purpose: a fresh venv with the newest versions pyproject.toml's
# ranges allow, the versions that differ from the lock, then the whole suite.
test-latest: | $(UV)
	rm -rf $(LATEST)
	$(PYTHON) -m venv --without-pip $(LATEST)
	$(UV) pip install $(UVFLAGS) --quiet --python $(LATEST)/bin/python --refresh -e '.[test]'
	$(UV) pip freeze $(UVFLAGS) --python $(LATEST)/bin/python --exclude-editable \
	    | $(LATEST)/bin/python .ci/drift.py $(LOCK)
	$(LATEST)/bin/pytest -n 2

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) $(LATEST) $(TOOLS) .failmodes .pytest_cache
