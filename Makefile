# Two entry points: `make demo` and `make test`. Both build .venv from scratch
# on a machine that has only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
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

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .failmodes .pytest_cache
