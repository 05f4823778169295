# quills: every chore is a target here. `make test` is the test command CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: venv test lint typecheck unit soak bench bench-resilience format clean
.PHONY: bench-monitor up bench-pipeline

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## test: lint, type-check and the default test suite (what CI runs; < 15 min on 2 cores)
test: lint typecheck unit

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

## soak: the long scale and chaos tests (10M events, repeated kills)
soak: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

format: $(STAMP)
	$(PY) -m ruff format src tests bench
	$(PY) -m ruff check --fix src tests bench

## bench: every benchmark; each writes its section of docs/benchmarks.md
bench: bench-resilience bench-streams bench-monitor bench-pipeline bench-postbacks

bench-resilience: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/resilience.py --write docs/benchmarks.md

## bench-monitor: one instance tick for 200 commands; one aggregator for 100 streams x 50 commands
bench-monitor: $(STAMP)
	$(PY) bench/monitor.py --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

## bench-streams: quills vs FastStream, quixstreams and faust-streaming on tansu and NATS (section of docs/benchmarks.md)
.PHONY: bench-streams
BENCH_VENVS := bench/.venvs
bench-streams: $(STAMP)
	test -x $(BENCH_VENVS)/faststream/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/faststream
	$(BENCH_VENVS)/faststream/bin/pip install -q "faststream[kafka,confluent,nats]" "aiokafka[lz4]"
	test -x $(BENCH_VENVS)/quix/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/quix
	$(BENCH_VENVS)/quix/bin/pip install -q quixstreams
	test -x $(BENCH_VENVS)/faust/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/faust
	$(BENCH_VENVS)/faust/bin/pip install -q faust-streaming "aiokafka[lz4]"
	$(PY) bench/streams/run.py --write docs/benchmarks.md

## up: the attribution platform on this machine (broker, ingest :8080, API :8081, monitor :8082); Ctrl-C stops
UP_ARGS ?=
up: $(STAMP)
	$(VENV)/bin/quills up $(UP_ARGS)

## bench-pipeline: ingest vs FastAPI+pydantic (load from wrk), and the whole pipeline end to end (section of docs/benchmarks.md);
## BENCH_ARGS=--skip-e2e runs the ingest part only
bench-pipeline: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk
	test -x $(BENCH_VENVS)/fastapi/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/fastapi
	$(BENCH_VENVS)/fastapi/bin/pip install -q fastapi pydantic uvicorn uvloop httptools nats-py
	$(PY) bench/pipeline/run.py --peer-python $(BENCH_VENVS)/fastapi/bin/python --write docs/benchmarks.md $(BENCH_ARGS)
## bench-postbacks: rule evaluation (1000 apps x 5 rules) and delivery with one partner hung (section of docs/benchmarks.md)
.PHONY: bench-postbacks
bench-postbacks: $(STAMP)
	$(PY) bench/postbacks.py --write docs/benchmarks.md
