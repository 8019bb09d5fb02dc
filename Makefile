# The two commands: `make run` (the platform) and `make test` (the suite). Everything installs
# into .venv from requirements/ on first use, and again whenever a requirements file changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: prepare run test lint check-migrations clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.base-installed: requirements/base.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $(VENV)/.base-installed $@

# What any server of the platform needs before it starts (make run; CI's gunicorn pass): the
# schema, the backends' check, the admin account, the static files, and the side effects a previous
# run left pending.
prepare: $(VENV)/.base-installed
	$(PY) manage.py migrate --noinput
	@$(QUIET) $(PY) -m config.backends
	$(QUIET) $(PY) manage.py ensure_admin
	$(QUIET) $(PY) manage.py collectstatic --noinput --verbosity 0
	$(QUIET) $(PY) manage.py relay_outbox --once

# One ASGI process (uvicorn) serves HTTP and WebSockets. With a broker (CELERY_BROKER_URL in the
# environment or .env) honcho runs it beside the workers (notifications, reports, admissions), the
# outbox relay and Celery beat (Procfile); without, it runs alone: tasks run in-process, and so does
# the beat schedule (config.beat). Production serves HTTP from gunicorn: see README.
# The development-key warning (no SECRET_KEY) is shown by the first step only.
QUIET := DEV_KEY_WARNED=1

run: prepare
	@echo "Platform on http://$(HOST):$(PORT)/  API docs: /api/docs/  ReDoc: /api/redoc/  admin: /admin/"
	@if [ -n "$$CELERY_BROKER_URL" ] || grep -qs '^CELERY_BROKER_URL=.' .env; then \
		echo "Broker configured: starting web, notifications and reports workers, admission consumer, outbox relay, beat"; \
		$(QUIET) HOST=$(HOST) WEB_PORT=$(PORT) exec $(VENV)/bin/honcho start -f Procfile; \
	else \
		$(QUIET) IN_PROCESS_BEAT=1 exec $(VENV)/bin/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --no-access-log \
			--timeout-graceful-shutdown 10 --ws-per-message-deflate false; \
	fi

test: $(VENV)/.dev-installed
	$(VENV)/bin/pytest $(ARGS)

$(VENV)/.lint-installed: requirements/base.txt requirements/dev.txt requirements/lint.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements/lint.txt
	touch $(VENV)/.base-installed $(VENV)/.dev-installed $@

# Static checks: code style, types, the layers' import contracts (.importlinter), migrations, the
# OpenAPI schema, and the deployment files (compose and workflow schemas, hadolint, Prometheus
# targets: docker/check.sh; the Kubernetes manifests: deploy/check.sh).
lint: $(VENV)/.lint-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --fail-on-warn --file $(VENV)/openapi-check.yaml
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash docker/check.sh
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash deploy/check.sh

clean:
	rm -rf $(VENV) var
