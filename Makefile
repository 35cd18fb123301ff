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
# make test's pytest-xdist workers (tests/conftest.py groups the tests); 0: one process.
TEST_WORKERS   ?= 2

export PATH := $(CURDIR)/$(CACHE)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

# uv from PATH, else bootstrapped into $(UV_DIR) (a private venv: no pip install into a
# PEP 668 system Python, nothing that must be on PATH); hack/bootstrap-uv.sh says why not.
UV_DIR ?= $(CACHE)/uv

# Bytecode compiled once here (compileall skips what is current, so an older .venv catches
# up): this environment sets PYTHONDONTWRITEBYTECODE, and without it every start of the
# service, and every test that starts one, compiled scikit-learn from source (2x the start).
$(VENV)/.installed: pyproject.toml Makefile
	@uv=$$(UV_VERSION=$(UV_VERSION) hack/bootstrap-uv.sh $(UV_DIR)) \
	  && echo ">> creating $(VENV) with the pinned dependencies of pyproject.toml ($$uv)" \
	  && "$$uv" venv --quiet --allow-existing --python $(PYTHON_VERSION) $(VENV) \
	  && "$$uv" pip install --quiet --python $(PY) -e '.[dev]' \
	  && $(PY) -m compileall -q -j0 $(VENV)/lib service/modelops_service operator/modelops_operator devstack
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the pinned Python dependencies.

.PHONY: tools
tools: ## Install the pinned test tools (control plane, helm, kubectl, prometheus) into .cache/.
	hack/install-tools.sh

.PHONY: lint
lint: venv tools ## Lint: ruff, shellcheck, generated files fresh, helm lint --strict of both charts, mypy.
	$(VENV)/bin/ruff check .
	shellcheck --external-sources --severity=warning hack/*.sh .ci/run
	$(VENV)/bin/ruff format --check .
	$(PY) hack/generate.py --check
	@for chart in charts/model-service charts/model-operator; do \
	  helm lint --strict --quiet $$chart; \
	  for f in $$chart/ci/*-values.yaml; do helm lint --strict --quiet $$chart --values $$f; done; \
	done
	$(VENV)/bin/mypy

.PHONY: generate
generate: venv tools ## Write every generated file: rules, dashboards, chart copies, values and READMEs, manifests/rbac.
	$(PY) hack/generate.py

.PHONY: fmt
fmt: venv ## Format and autofix (ruff).
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The test tiers, by speed (tests/conftest.py derives a test's tier from its markers, the
# fixtures it uses and its imports). Narrow any of them: PYTEST_ARGS="tests/service -x".
# A test is in the heaviest tier it is marked with: the expressions keep the tiers disjoint.
# The slow tiers run on TEST_WORKERS workers; most of their time is waiting on rigs, not CPU.
XDIST        = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope)
TIER_UNIT    := not process and not render and not cluster
TIER_PROCESS := process and not render and not cluster
TIER_RENDER  := render and not cluster

.PHONY: test
test: venv tools models ## Run every test: the unit, process, render and cluster tiers (TEST_WORKERS=2).
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Unit tier: in-process only, no subprocess, under a minute.
	$(PY) -m pytest -m "$(TIER_UNIT)" $(PYTEST_ARGS)

.PHONY: test-process
test-process: venv tools models ## Process tier: the service, Prometheus, loadtest, make, the images (make engine) as local processes.
	$(PY) -m pytest -m "$(TIER_PROCESS)" $(XDIST) $(PYTEST_ARGS)

.PHONY: test-render
test-render: venv tools models ## Render tier: helm template/lint, promtool, hadolint, Go tools (no cluster).
	$(PY) -m pytest -m "$(TIER_RENDER)" $(PYTEST_ARGS)

.PHONY: test-cluster
test-cluster: venv tools models ## Cluster tier: against the control plane of devstack/.
	$(PY) -m pytest -m "cluster" $(XDIST) $(PYTEST_ARGS)

##@ Model service

.PHONY: models
models: venv ## Train the demo models into models/ (offline, seconds).
	$(PY) -m modelops_service.train --out $(MODELS_DIR)

.PHONY: serve
serve: models ## Serve a demo model on http://127.0.0.1:8080 (MODEL=models/wine/1 PORT=8080 by default).
	MODELOPS_MODEL_DIR=$${MODEL:-$(MODELS_DIR)/wine/1} $(PY) -m modelops_service --host 127.0.0.1 --port $(PORT)

##@ Dev stack (devstack/: a real control plane on loopback, no Docker)

# NODE=real: a real node (kubelet, kube-proxy, containerd, CoreDNS for cluster.local only;
# root) instead of the KWOK nodes,
# with the project's images loaded from the Docker engine when it has them (make images).
NODE ?= kwok

.PHONY: cluster-up
cluster-up: venv tools ## Start etcd, kube-apiserver, KCM, scheduler and KWOK nodes (NODE=real: a real node); print KUBECONFIG.
	$(PY) -m devstack up --node $(NODE) $(if $(filter real,$(NODE)),--load $(SERVICE_IMAGE) --load $(OPERATOR_IMAGE))

.PHONY: cluster-down
cluster-down: venv ## Stop the processes cluster-up started, by PID; tear down a real node and say what it removed.
	$(PY) -m devstack down

.PHONY: cluster-status
cluster-status: venv ## Show the processes of the rig cluster-up started (PID, running or gone).
	$(PY) -m devstack status

.PHONY: cluster-env
cluster-env: venv ## Print the running rig's KUBECONFIG exports, for eval in a shell (make -s).
	@$(PY) -m devstack env

##@ Kind (the user's path on a laptop: a real cluster in Docker)

# Pinned versions of the kind path (hack/versions.env pins the test rig's tools).
# kind's node image: the one this kind release was built and tested with; pinned
# here only (kind-config.yaml names no image; `kind create cluster --image` uses this).
KIND_VERSION         ?= v0.33.0
KIND_NODE_IMAGE      ?= kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5
KIND_KUBECTL_VERSION ?= v1.37.2
KIND_HELM_VERSION    ?= v4.1.4
KPS_CHART_VERSION    ?= 88.2.0
KPS_REPO             ?= https://prometheus-community.github.io/helm-charts
# metrics-server's chart: its app is the metrics-server the test rig builds
# (METRICS_SERVER_VERSION in hack/versions.env); kind leaves the metrics API out, and
# without it the chart's autoscaling.enabled HorizontalPodAutoscaler never scales.
METRICS_SERVER_CHART_VERSION ?= 3.13.0
METRICS_SERVER_REPO  ?= https://kubernetes-sigs.github.io/metrics-server/

KIND_CLUSTER     ?= modelops
KIND_CONTEXT     := kind-$(KIND_CLUSTER)
LOCALBIN         ?= $(CURDIR)/bin
KIND             ?= $(LOCALBIN)/kind-$(KIND_VERSION)
KIND_KUBECTL     ?= $(LOCALBIN)/kubectl-$(KIND_KUBECTL_VERSION)
KIND_HELM        ?= $(LOCALBIN)/helm-$(KIND_HELM_VERSION)
# Image names: the charts' defaults (image.repository, tag = appVersion).
IMAGE_TAG        ?= 0.1.0
SERVICE_REPO     ?= model-service
OPERATOR_REPO    ?= modelops-operator
SERVICE_IMAGE    := $(SERVICE_REPO):$(IMAGE_TAG)
OPERATOR_IMAGE   := $(OPERATOR_REPO):$(IMAGE_TAG)
KPS_VALUES       ?= deploy/kube-prometheus-stack-values.yaml
# The namespace the examples (manifests/examples, deploy/kind) name: not a setting.
MODELS_NS        := models
OPERATOR_NS      ?= modelops-system
# The model installed with plain `helm install` (its own namespace, so it never meets a
# ModelDeployment of the same name), and the ModelDeployments of the tour and the demos.
HELM_MODEL       ?= wine
HELM_NS          ?= models-helm
KIND_EXAMPLE     ?= manifests/examples/diabetes-canary.yaml
DEMO_MANIFEST    ?= manifests/examples/diabetes-canary-v3.yaml
ROLLBACK_MANIFEST ?= manifests/examples/wine-failing-canary.yaml
ROLLBACK_PATCH   ?= {"spec":{"model":{"version":"2","artifact":"/models/wine/2"}}}
GRAFANA_PORT     ?= 3000
PROMETHEUS_PORT  ?= 9090
KIND_ENV = KIND=$(KIND) KUBECTL=$(KIND_KUBECTL) HELM=$(KIND_HELM) KIND_CLUSTER=$(KIND_CLUSTER) \
	MODELS_NS=$(MODELS_NS) GRAFANA_PORT=$(GRAFANA_PORT) PROMETHEUS_PORT=$(PROMETHEUS_PORT) PY=$(PY)
KCTL = $(KIND_KUBECTL) --context $(KIND_CONTEXT)
KHELM = $(KIND_HELM) --kube-context $(KIND_CONTEXT)
# The one install of kube-prometheus-stack: `make up` and `make alerting` (which adds the
# Alertmanager overlay) upgrade the same release, chart version and values.
KPS_INSTALL = $(KHELM) upgrade --install kube-prometheus-stack kube-prometheus-stack --repo $(KPS_REPO) \
	--version $(KPS_CHART_VERSION) --namespace monitoring --create-namespace --values $(KPS_VALUES)
ALERTING_VALUES ?= .run/alerting-values.yaml

.PHONY: up
up: ## Cluster, monitoring, images, operator, a model and the example, or demo-local without Docker.
	@if hack/kind.sh engine; then \
	  $(MAKE) --no-print-directory kind-up; \
	else \
	  echo ">> no Docker engine answers: running the no-Docker demo instead (make demo-local)"; \
	  $(MAKE) --no-print-directory demo-local; \
	fi

.PHONY: kind-preflight
kind-preflight: ## Check what kind-up needs of the host (Docker engine, cgroup v2, curl); creates nothing.
	@hack/kind.sh engine >/dev/null
	@$(KIND_ENV) hack/kind.sh preflight

# Every prerequisite is checked or built before step 1 (make runs them in this order),
# so a host that cannot finish stops before a cluster exists.
.PHONY: kind-up
kind-up: kind-preflight venv models $(KIND) $(KIND_HELM) $(KIND_KUBECTL) ## The Docker path of up, without the fallback (fails when Docker is down).
	@echo ">> 1/9 kind cluster '$(KIND_CLUSTER)' ($(KIND_NODE_IMAGE))"
	$(KIND) get clusters 2>/dev/null | grep -x '$(KIND_CLUSTER)' >/dev/null \
	  || $(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --image $(KIND_NODE_IMAGE) --wait 120s
	@echo ">> 2/9 kube-prometheus-stack $(KPS_CHART_VERSION) in namespace monitoring"
	$(KPS_INSTALL) --wait=watcher --timeout 15m
	@echo ">> 3/9 metrics-server $(METRICS_SERVER_CHART_VERSION) in namespace kube-system (the HPA's metrics API)"
	$(KHELM) upgrade --install metrics-server metrics-server --repo $(METRICS_SERVER_REPO) \
	  --version $(METRICS_SERVER_CHART_VERSION) --namespace kube-system \
	  --set-json 'args=["--kubelet-insecure-tls"]' --wait=watcher --timeout 5m
	@echo ">> 4/9 images $(SERVICE_IMAGE) and $(OPERATOR_IMAGE), loaded into kind"
	$(MAKE) --no-print-directory load-images
	@echo ">> 5/9 the operator (charts/model-operator) in namespace $(OPERATOR_NS)"
	$(KHELM) upgrade --install model-operator charts/model-operator \
	  --namespace $(OPERATOR_NS) --create-namespace \
	  --set image.repository=$(OPERATOR_REPO) --set image.tag=$(IMAGE_TAG) \
	  --set metrics.serviceMonitor.enabled=true --wait=watcher --timeout 5m
	@echo ">> 6/9 model '$(HELM_MODEL)' with plain helm (charts/model-service) in namespace $(HELM_NS)"
	$(KHELM) upgrade --install $(HELM_MODEL) charts/model-service --namespace $(HELM_NS) --create-namespace \
	  --set model.name=$(HELM_MODEL) --set model.version=1 --set model.artifact=/models/$(HELM_MODEL)/1 \
	  --set model.sha256=$$(hack/kind.sh model-sha256 $(MODELS_DIR)/$(HELM_MODEL)/1) \
	  --set image.repository=$(SERVICE_REPO) --set image.tag=$(IMAGE_TAG) --wait=watcher --timeout 5m
	@echo ">> 7/9 the example ModelDeployment ($(KIND_EXAMPLE)) and the demo traffic NodePort"
	$(KCTL) create namespace $(MODELS_NS) --dry-run=client -o yaml | $(KCTL) apply -f -
	$(KIND_ENV) hack/kind.sh apply-once $(KIND_EXAMPLE)
	$(KCTL) apply -f deploy/kind/demo-traffic-service.yaml
	@echo ">> 8/9 waiting for the ModelDeployments to be Ready"
	$(KIND_ENV) hack/kind.sh wait-ready $(KIND_EXAMPLE)
	@echo ">> 9/9 done"
	@$(KIND_ENV) hack/kind.sh next-steps

# Options of the demo (python -m devstack.demo --help): e.g. --yes (no pauses), --node kwok
# (the simulated stage even where the real node can run), --keep-cluster (leave the cluster
# running; make cluster-down stops it).
DEMO_LOCAL_ARGS ?=

.PHONY: demo-local
demo-local: venv tools models ## A canary promoted, two rolled back: on the real node where containers can run (root, Docker), else on KWOK nodes.
	$(PY) -m devstack.demo $(DEMO_LOCAL_ARGS)

.PHONY: images
images: models ## Build the service and operator images (BuildKit; models baked in; MODELOPS_OFFLINE=1: no registry).
	IMAGE_TAG=$(IMAGE_TAG) SERVICE_REPO=$(SERVICE_REPO) OPERATOR_REPO=$(OPERATOR_REPO) hack/images.sh

.PHONY: engine
engine: ## Start a Docker engine when none answers (installs Debian's docker.io; no systemd: dockerd by PID).
	hack/docker-engine.sh start

.PHONY: engine-stop
engine-stop: ## Stop the dockerd that `make engine` started (an engine it did not start is left alone).
	hack/docker-engine.sh stop

.PHONY: load-images
load-images: images $(KIND) ## Build the images and load them into the kind cluster.
	$(KIND_ENV) hack/kind.sh load-images $(SERVICE_IMAGE) $(OPERATOR_IMAGE)

.PHONY: alerting
alerting: venv $(KIND) $(KIND_HELM) $(KIND_KUBECTL) ## Add the Alertmanager example (alerts/alertmanager/) to the stack; SLACK_API_URL, PAGER_TOKEN fill its Secret.
	@$(KIND_ENV) hack/kind.sh alerting-secret
	@mkdir -p $(dir $(ALERTING_VALUES))
	$(KIND_ENV) hack/kind.sh alerting-values > $(ALERTING_VALUES)
	$(KPS_INSTALL) --values $(ALERTING_VALUES) --wait=watcher --timeout 10m

.PHONY: demo
demo: venv $(KIND) $(KIND_KUBECTL) ## Roll the diabetes example to version 3 (healthy) as a canary while traffic runs; watch it promote.
	$(KIND_ENV) hack/kind.sh demo $(DEMO_MANIFEST)

.PHONY: demo-rollback
demo-rollback: venv $(KIND) $(KIND_KUBECTL) ## Roll wine to a version built to fail analysis (drift) while traffic runs; watch it roll back.
	$(KIND_ENV) hack/kind.sh demo $(ROLLBACK_MANIFEST) '$(ROLLBACK_PATCH)'

.PHONY: grafana
grafana: $(KIND) $(KIND_KUBECTL) ## Port-forward Grafana to http://127.0.0.1:3000 (GRAFANA_PORT=...) and print the login.
	@$(KIND_ENV) hack/kind.sh grafana

.PHONY: prometheus
prometheus: $(KIND) $(KIND_KUBECTL) ## Port-forward Prometheus to http://127.0.0.1:9090 (PROMETHEUS_PORT=...).
	@$(KIND_ENV) hack/kind.sh prometheus

.PHONY: status
status: $(KIND) $(KIND_HELM) $(KIND_KUBECTL) ## Show the kind cluster: nodes, releases, pods, ModelDeployments.
	@$(KIND_ENV) hack/kind.sh status

.PHONY: down
down: $(KIND) ## Delete the kind cluster (nothing to do when there is none).
	@$(KIND_ENV) hack/kind.sh down

.PHONY: kind-tools
kind-tools: $(KIND) $(KIND_HELM) $(KIND_KUBECTL) ## Install the pinned kind, helm and kubectl into bin/.

$(KIND) $(KIND_HELM) $(KIND_KUBECTL): | $(LOCALBIN)
	hack/kind.sh install-tool $@
$(LOCALBIN):
	mkdir -p $@

##@ Benchmarks

BENCH_ARGS ?=

.PHONY: bench-setup
bench-setup: ## Install wrk and the peers' pinned venvs (MLServer, KServe) into .cache/bench/.
	@UV=$$(UV_VERSION=$(UV_VERSION) hack/bootstrap-uv.sh $(UV_DIR)) bench/setup.sh

.PHONY: bench
bench: venv bench-setup ## Benchmark the service vs MLServer, KServe, a bare FastAPI floor (BENCH_ARGS=--help).
	@test -f $(MODELS_DIR)/wine/1/model.joblib || $(MAKE) --no-print-directory models
	$(PY) bench/run.py --model $(MODELS_DIR)/wine/1 $(BENCH_ARGS)

.PHONY: bench-inprocess
bench-inprocess: venv ## Ours' CPU per request in process, no sockets; A/B: BENCH_ARGS="--variant main PYTHONPATH=DIR".
	@test -f $(MODELS_DIR)/wine/1/model.joblib || $(MAKE) --no-print-directory models
	$(PY) bench/inprocess.py --model $(MODELS_DIR)/wine/1 $(BENCH_ARGS)

##@ Operator (operator/: kopf, ModelDeployment)

OPERATOR_TICK ?= 2

.PHONY: run-operator
run-operator: venv ## Run the operator locally against KUBECONFIG (e.g. the rig of cluster-up), metrics on :8000.
	MODELOPS_OPERATOR_TICK_SECONDS=$(OPERATOR_TICK) $(PY) -m modelops_operator

.PHONY: bench-operator
bench-operator: venv tools ## Apply 50 ModelDeployments at once on the rig; print time to all Ready and peak memory.
	$(PY) bench/operator_rollout.py $(BENCH_ARGS)

.PHONY: bench-autoscaling
bench-autoscaling: venv tools ## On the real node (queue lock): time from a ModelDeployment's new size to its new pods Ready.
	flock /run/lock/modelops-node-queue.lock $(PY) bench/autoscaling.py $(BENCH_ARGS)

##@ Monitoring (alerts/, dashboards/, loadtest/)

LOAD_URL      ?= http://127.0.0.1:$(PORT)
LOAD_SCENARIO ?= normal
LOAD_RATE     ?= 20
LOAD_DURATION ?= 60
LOAD_ARGS     ?=

.PHONY: load
load: venv ## Send bounded traffic to a running service (LOAD_URL, LOAD_SCENARIO=normal|drift|bad-input|spike, LOAD_RATE, LOAD_DURATION).
	$(PY) -m loadtest --url $(LOAD_URL) --scenario $(LOAD_SCENARIO) --rate $(LOAD_RATE) --duration $(LOAD_DURATION) $(LOAD_ARGS)

##@ Hardening (tests/hardening, bench/soak.py)

SOAK_ARGS ?=

.PHONY: soak
soak: venv models ## Soak the real service: mixed traffic at 70% of measured capacity, 20 min (SOAK_ARGS="--minutes 3").
	$(PY) bench/soak.py $(SOAK_ARGS)
