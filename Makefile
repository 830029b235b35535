# The two commands: `make run` (set up everything and start web, worker and beat) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT
# Where the embedded database, broker, logs and secret key live (settings.py reads the same variable).
VAR_DIR ?= $(CURDIR)/var
export VAR_DIR

.PHONY: run test lint bench fuzz install migrate messages clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Set up a fresh machine and start web (gunicorn), workers and beat under supervisord (deploy/supervisord.conf),
# which restarts any of them that dies; Ctrl-C stops them all.
run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py load_demo_data
	mkdir -p $(VAR_DIR)/log
	BIN=$(abspath $(BIN)) $(BIN)/supervisord --configuration deploy/supervisord.conf

# The test suite; against PostgreSQL and Redis when DATABASE_URL and CELERY_BROKER_URL say so.
# Without CELERY_BROKER_URL the tests get an embedded broker of their own, apart from a running `make run`.
test: export CELERY_BROKER_URL ?= sqlite:///$(VAR_DIR)/test-broker.sqlite3
test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/run.py --runs 3
	$(BIN)/python benchmarks/run.py --runs 3 --rules-only
# The API fuzzed with fresh random examples, as a worker and as a supervisor (make test runs a small fixed set).
fuzz: install ; FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} HYPOTHESIS_RANDOM=1 $(BIN)/pytest tests/test_api_schema_fuzz.py -p no:cacheprovider
faults: install ; $(BIN)/python benchmarks/faults.py  # fault injection on a stack of its own, ~17 min; not in `make test`
triage-bench: install ; $(BIN)/python benchmarks/semantic_triage.py --worker  # triage cost a message, worker rate, request path

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Regenerate the Bosnian catalogue after changing user-visible text, then translate and run `make messages`.
messages: install
	$(BIN)/python manage.py makemessages --locale bs --no-obsolete --add-location file \
		--ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*'
	$(BIN)/python manage.py compilemessages --locale bs --ignore '.venv/*'

clean:
	rm -rf $(VENV) var
