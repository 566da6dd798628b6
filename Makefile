# Tansiq: `make run` brings the whole network up on this machine, `make test` runs every test.
# Works as root (or with sudo) on a fresh Debian/Ubuntu with make, git, curl, python3 and python3-venv;
# see scripts/ for what each step does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
PYTHON   := $(VENV)/bin/python
TANSIQ   := $(VENV)/bin/tansiq
STAMP    := $(VENV)/.installed
PYTEST_ARGS ?=
# make bench: the calendar rows of docs/benchmarks.md at this many events (issue 13)
CALENDAR_EVENTS ?= 100000
# A broker started by docker compose leaves its AMQP_URI in var/broker.env (scripts/ensure-broker.sh).
BROKER_ENV := set -a; if [ -f var/broker.env ]; then . ./var/broker.env; fi; set +a;

.PHONY: help install broker postgres browser run test lint i18n bench faults deploy-env clean

help:
	@echo "make run      install, start the broker, migrate, seed the demo once, start everything"
	@echo "make test     install, make sure of broker, PostgreSQL, Chromium (apt when missing), run every test"
	@echo "make install  create $(VENV) and install Tansiq with its test dependencies"
	@echo "make lint     ruff check (rules in pyproject.toml; ruff check --fix repairs the fixable ones)"
	@echo "make i18n     extract every string (babel.cfg), update the ar/fr/en catalogues, compile them (docs/web.md)"
	@echo "make broker | postgres | browser   make sure that one is available"
	@echo "make bench    run the benchmarks (writes docs/benchmarks.md)"
	@echo "make faults   kill services, reset the broker and the database under load, then reconcile (writes docs/reliability.md)"
	@echo "make deploy-env   deploy/.env and var/secrets/ for docker compose"
	@echo "make clean    remove the virtualenv and build debris (keeps var/ data)"

install: $(STAMP)

# Reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@. scripts/lib.sh; \
	if ! have python3; then apt_install python3 python3-venv || die "install python3 and python3-venv, then retry"; fi; \
	if ! $(PYTHON) -m pip --version >/dev/null 2>&1; then \
		say "python3 -m venv $(VENV)"; \
		python3 -m venv --clear $(VENV) 2>/dev/null \
		|| { say "python3-venv is missing"; apt_install python3-venv && python3 -m venv --clear $(VENV); } \
		|| die "could not create $(VENV): apt-get install -y python3-venv, then retry"; \
	fi
	$(PYTHON) -m pip install --quiet -e '.[test]'
	@touch $@

broker:
	@scripts/ensure-broker.sh

postgres:
	@scripts/ensure-postgres.sh

browser:
	@scripts/ensure-browser.sh

run: install broker
	@$(BROKER_ENV) $(TANSIQ) migrate
	@$(BROKER_ENV) $(TANSIQ) demo --if-empty
	@# The address the gateway will serve, read from its configuration (honours TANSIQ_WEB_ADDRESS).
	@address="$$($(PYTHON) -c 'from tansiq import config; print(config.load("gateway")["WEB_SERVER_ADDRESS"])')"; \
	printf '\n==> Tansiq starts now: open http://%s/   (Ctrl-C stops everything)\n\n' "$${address/#0.0.0.0:/127.0.0.1:}"
	@$(BROKER_ENV) exec $(TANSIQ) up

test: install broker postgres browser
	@$(BROKER_ENV) $(VENV)/bin/pytest -ra $(PYTEST_ARGS)

lint: install
	@$(VENV)/bin/ruff check .

# Strings of the pages and notifications (tansiq/i18n.py): msgids are keys, sorted, without line numbers
# so that branches merge; obsolete ones are dropped; never fuzzy-matched (a key is not a sentence).
LOCALE := tansiq/locale
i18n: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k t -k translate_plural:2,3 --no-location --sort-output --omit-header \
		-o $(LOCALE)/tansiq.pot .
	$(VENV)/bin/pybabel update -i $(LOCALE)/tansiq.pot -d $(LOCALE) -D tansiq --no-fuzzy-matching --ignore-obsolete
	@# No dates in the headers: two branches that both ran make i18n then merge without a conflict.
	sed -i '/^"POT-Creation-Date: /d; /^"PO-Revision-Date: /d' $(LOCALE)/*/LC_MESSAGES/tansiq.po
	$(VENV)/bin/pybabel compile -d $(LOCALE) -D tansiq --statistics

bench: install broker
	@$(BROKER_ENV) $(TANSIQ) bench
	@$(TANSIQ) bench --calendar-events $(CALENDAR_EVENTS)

deploy-env:
	@scripts/make-deploy-env.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache test-results
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Partner referrals and events through the real broker while services are SIGKILLed, broker
# connections closed and database sessions terminated; writes the figures to docs/reliability.md.
faults: install broker postgres
	@$(BROKER_ENV) TANSIQ_FAULTS=full $(VENV)/bin/pytest -q -s -p no:cacheprovider tests/integration/test_faults.py
