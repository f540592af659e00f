# Turnout: `make demo` runs a live migration end to end on the embedded stack; `make test` runs the suite.
# Both install what they need first (scripts/install_deps.sh) on a fresh Debian machine.
PY := .venv/bin/python
ROUTE ?= dynamodb-alternator
ITEMS ?= 100000
DEMO_ARGS ?=
export PYTHONPATH := $(CURDIR)/include:$(CURDIR)/plugins:$(CURDIR)/scripts

.PHONY: deps demo lint test test-unit stack-up stack-down stop bench bench-mysql bench-mongo bench-status bench-capacity clean

deps:
	@scripts/install_deps.sh

demo: deps
	$(PY) scripts/demo.py --route $(ROUTE) --items $(ITEMS) $(DEMO_ARGS)

lint: deps
	.venv/bin/ruff check include plugins dags scripts bench tests
	.venv/bin/mypy

test: deps lint
	$(PY) -m pytest tests -ra

test-unit: deps
	$(PY) -m pytest tests/unit -q

stack-up: deps
	$(PY) scripts/stack.py up

# every stack server and Airflow component any demo, test or bench of this checkout started, whatever its directory
# (the process registry .turnout-run/: scripts/procreg.py); stack.py needs nothing outside the standard library
stop:
	$(if $(wildcard $(PY)),$(PY),python3) scripts/stack.py stop-all

stack-down: stop

bench: deps
	$(PY) bench/bench_load.py

bench-mysql: deps
	$(PY) bench/bench_mysql.py $(BENCH_ARGS)

bench-mongo: deps
	$(PY) bench/bench_mongo.py $(BENCH_ARGS)

bench-status: deps
	$(PY) bench/bench_status.py $(BENCH_ARGS)

bench-capacity: deps
	$(PY) bench/bench_capacity.py $(BENCH_ARGS)

clean: stop
	rm -rf .demo test-artifacts
