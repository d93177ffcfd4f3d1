# Coach: `make run` serves the coach with embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The learned safety stage's encoder: built, checked and stamped once (safety/learned_build.py).
MODEL_DIR ?= $(or $(COACH_SAFETY_MODEL_DIR),.cache/safety-model)
MODEL_STAMP := $(MODEL_DIR)/manifest.json

.PHONY: run test lint typecheck bench bench-perf bench-drills system-deps install clean openapi model

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	@test -x $(BIN)/python || uv venv --quiet --python $(PY) $(VENV)
	uv pip install --quiet --python $(BIN)/python -r requirements-dev.lock
	uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

$(MODEL_STAMP): safety/learned_build.py $(wildcard safety/data/learned/*) | $(STAMP)
	$(BIN)/python -m safety.learned_build $(MODEL_DIR)
	@touch $(MODEL_STAMP)

model: $(MODEL_STAMP)

# redis-server for integration tests; Debian's Chromium for browser tests.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(STAMP) $(MODEL_STAMP)
	COACH_ALLOW_DRAFT_TEMPLATES=$${COACH_ALLOW_DRAFT_TEMPLATES:-true} $(BIN)/coach serve

lint: $(STAMP)
	$(BIN)/ruff check coach safety tests bench
	$(BIN)/mypy

test: $(STAMP) system-deps $(MODEL_STAMP)
	$(BIN)/ruff check coach safety tests bench
	$(BIN)/mypy
	$(BIN)/coach templates check
	$(BIN)/pytest -q -p no:cacheprovider

# Both halves of the measurements: performance (bench/run.py, about 12 min) and the
# reliability drills (bench/drills/run.py, about 2 min); each runs even if the other fails.
bench: $(STAMP) system-deps $(MODEL_STAMP)
	$(BIN)/python bench/run.py; perf=$$?; $(BIN)/python bench/drills/run.py; drills=$$?; \
	test $$perf -eq 0 && test $$drills -eq 0

bench-perf: $(STAMP) system-deps $(MODEL_STAMP)
	$(BIN)/python bench/run.py

bench-drills: $(STAMP) system-deps $(MODEL_STAMP)
	$(BIN)/python bench/drills/run.py

openapi: $(STAMP)
	$(BIN)/coach openapi -o docs/openapi.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache artifacts
