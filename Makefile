# twinlib — `make up` runs the whole system, `make test` passes the tests. Both start from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# install: the pinned runtime, twinlib[all] (what `make up` runs); test: + the test tools
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-installed-stamp
TWIN   := $(BIN)/twin
DATA   ?= data
DB     ?= $(DATA)/twin.db
# `make up DB=postgres`: the local PostgreSQL server (database PG_DB, created when missing)
PG_DB  ?= twin
PG_URL ?= postgresql:///$(PG_DB)?host=/var/run/postgresql
ifeq ($(DB),postgres)
  DB := $(PG_URL)
  export TWIN_DB := $(PG_URL)
endif

.PHONY: help venv install install-test data model up pg-db test test-postgres test-notebooks test-fast bench notebooks screenshots clean distclean

help:
	@echo "make up      - set up, generate history, train models, run simulator + API (:5000) + dashboard (:8050)"
	@echo "make up PLANT=opcua|modbus - the same, the monitor reading a simulated OPC UA / Modbus plant"
	@echo "make test    - set up and run the whole test suite (unit, notebooks, API, browser, MQTT)"
	@echo "make up DB=postgres - the same on the local PostgreSQL server (database twin)"
	@echo "make bench   - measure speed and size into reports/bench.json"
	@echo "make install - only the pinned runtime (twinlib[all]); make install-test adds the test tools"
	@echo "make screenshots - refresh the dashboard screenshots in docs/ (headless Chromium)"
	@echo "make data | model | notebooks | clean"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[all]'
	@touch $@

$(TEST_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e '.[all,test]'
	@touch $@

venv install: $(STAMP)

install-test: $(TEST_STAMP)

data: $(STAMP)
	@test -f $(DATA)/readings.csv || $(TWIN) generate --out $(DATA)/readings.csv
	$(TWIN) init-db --db $(DB)
	$(TWIN) store --db $(DB) --csv $(DATA)/readings.csv

# trains when a model is missing or was trained on features this twinlib no longer computes
model: data
	$(TWIN) train --db $(DB) --if-needed

# PLANT=opcua or PLANT=modbus: the monitor reads a simulated plant over that protocol
up: $(STAMP) $(if $(TWIN_DB),pg-db)
	$(TWIN) up $(if $(PLANT),--plant $(PLANT))

# the database of `DB=postgres` on the local server (idempotent)
pg-db:
	@psql -d postgres -h /var/run/postgresql -tAc "SELECT 1 FROM pg_database WHERE datname='$(PG_DB)'" | grep -q 1 \
	  || createdb -h /var/run/postgresql $(PG_DB)

# the store, API, monitor and alarm tests again, on PostgreSQL (TWIN_TEST_PG_URL or the local server)
test-postgres: $(TEST_STAMP)
	TWIN_TEST_STORE=postgresql $(BIN)/python -m pytest -p no:cacheprovider tests/foundation/test_store.py \
	  tests/api/test_data.py tests/api/test_alarms.py tests/detect/test_engine.py tests/monitor/test_monitor.py

notebooks: $(STAMP)
	$(TWIN) notebooks run

test: $(TEST_STAMP)
	$(BIN)/ruff check twinlib tests benchmarks
	$(BIN)/python -m pytest tests
	$(MAKE) --no-print-directory test-notebooks

# nbval runs every notebook (01–04 first, so the dashboard then finds a filled database) on
# temporary paths: the tests never touch data/, models/ or reports/.
test-notebooks: $(TEST_STAMP)
	tmp=$$(mktemp -d) && TWIN_DB=$$tmp/twin.db TWIN_DATA_DIR=$$tmp/data TWIN_MODELS_DIR=$$tmp/models \
	  TWIN_REPORTS_DIR=$$tmp/reports $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest tests -m "not browser and not mqtt and not slow"

# the browser tests, writing their screenshots into docs/ (a plain test run keeps them in reports/)
screenshots: $(TEST_STAMP)
	TWIN_DOCS_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:cacheprovider tests/dashboard/test_browser.py

bench: $(TEST_STAMP)
	$(TWIN) bench

clean:
	rm -rf reports .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(DATA)/*.csv $(DATA)/*.json $(DATA)/*.db* models/*.pkl models/*.json
