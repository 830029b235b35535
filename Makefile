# The two commands: `make run` (set up everything and start web, worker and beat) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint bench install migrate messages clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Set up a fresh machine and start web (gunicorn), worker and beat together; Ctrl-C stops all three.
run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py load_demo_data
	$(BIN)/honcho start --procfile Procfile --port $(PORT)

# The test suite; against PostgreSQL and Redis when DATABASE_URL and CELERY_BROKER_URL say so.
test: install
	CELERY_BROKER_DIR=$(CURDIR)/var/test-broker $(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check .

# Regenerate the Bosnian catalogue after changing user-visible text, then translate and run `make messages`.
messages: install
	$(BIN)/python manage.py makemessages --locale bs --no-obsolete --add-location file \
		--ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*'
	$(BIN)/python manage.py compilemessages --locale bs --ignore '.venv/*'

clean:
	rm -rf $(VENV) var
