# modelops-bundle: the front door. `make help` lists every target.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.11
UV_VERSION     ?= 0.13.8
VENV           ?= .venv
PY             := $(VENV)/bin/python
CACHE          ?= .cache
MODELS_DIR     ?= models
PORT           ?= 8080
PYTEST_ARGS    ?=

export PATH := $(CURDIR)/$(CACHE)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml
	@command -v uv >/dev/null || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@echo ">> creating $(VENV) with the pinned dependencies of pyproject.toml"
	uv venv --quiet --allow-existing --python $(PYTHON_VERSION) $(VENV)
	uv pip install --quiet --python $(PY) -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the pinned Python dependencies.

.PHONY: tools
tools: ## Install the pinned test tools (control plane, helm, kubectl, prometheus) into .cache/.
	hack/install-tools.sh

.PHONY: lint
lint: venv ## Lint and check formatting (ruff).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: fmt
fmt: venv ## Format and autofix (ruff).
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: test
test: venv tools models ## Run every test: pure, render and cluster tiers.
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-pure
test-pure: venv models ## Run the tests that need no helm, promtool or cluster.
	$(PY) -m pytest -m "not render and not cluster and not prometheus" $(PYTEST_ARGS)

.PHONY: test-render
test-render: venv tools models ## Run the render tier (helm template/lint, promtool).
	$(PY) -m pytest -m "render" $(PYTEST_ARGS)

.PHONY: test-cluster
test-cluster: venv tools models ## Run the cluster tier against the local control plane.
	$(PY) -m pytest -m "cluster" $(PYTEST_ARGS)

##@ Model service

.PHONY: models
models: venv ## Train the demo models into models/ (offline, seconds).
	$(PY) -m modelops_service.train --out $(MODELS_DIR)

.PHONY: serve
serve: models ## Serve a demo model on http://127.0.0.1:$(PORT) (MODEL=models/wine/1 by default).
	MODELOPS_MODEL_DIR=$${MODEL:-$(MODELS_DIR)/wine/1} $(PY) -m modelops_service --host 127.0.0.1 --port $(PORT)

##@ Test rig (a real control plane on loopback, no Docker)

.PHONY: cluster-up
cluster-up: venv tools ## Start etcd, kube-apiserver, KCM, scheduler and KWOK nodes; print KUBECONFIG.
	$(PY) -m tests.rig up

.PHONY: cluster-down
cluster-down: venv ## Stop the processes cluster-up started, by PID.
	$(PY) -m tests.rig down
