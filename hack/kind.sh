#!/usr/bin/env bash
# Helpers of the Kind section of the Makefile (make up, demo, grafana, status, down).
# The Makefile is the front door and holds every version pin; it passes the tool
# paths in the environment (KIND, KUBECTL, HELM, KIND_CLUSTER, ...).
#
#   engine                   exit 0 when a Docker engine answers, else say why and exit 1
#   preflight                check what `make up` needs of the host (cgroup v2, curl) before
#                            anything is created; one line naming the fix when it fails
#   install-tool bin/NAME-VERSION
#                            link NAME from PATH when it is that version, else download it
#                            from its official release and check the published sha256
#   model-sha256 DIR         sha256 of DIR/model.joblib
#   apply-once FILE          apply FILE unless its ModelDeployment exists (a re-run of
#                            `make up` leaves what `make demo` rolled on as it is)
#   wait-ready FILE          wait until the ModelDeployments in FILE are Ready
#   next-steps               print what to do next
#   load-images IMAGE...     load images into the cluster (image-archive fallback, kind #3795)
#   alerting-values          print the kube-prometheus-stack values of the Alertmanager example
#   alerting-secret          create Secret modelops-alerting from SLACK_API_URL and PAGER_TOKEN
#   demo FILE [PATCH]        roll FILE (or a merge PATCH of it) out while traffic runs, watch it
#   grafana | prometheus     port-forward to 127.0.0.1 and print URL (and login)
#   status | down            show or delete the kind cluster
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
KIND_CLUSTER=${KIND_CLUSTER:-modelops}
MODELS_NS=${MODELS_NS:-models}
GRAFANA_PORT=${GRAFANA_PORT:-3000}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
PY=${PY:-python3}
CONTEXT=kind-$KIND_CLUSTER
MONITORING_NS=monitoring
KPS_RELEASE=kube-prometheus-stack
# The NodePort of deploy/kind/demo-traffic-service.yaml, mapped to loopback by kind-config.yaml.
TRAFFIC_URL=${TRAFFIC_URL:-http://127.0.0.1:30080}

say() { printf '>> %s\n' "$*"; }
die() {
  printf 'kind.sh: %s\n' "$*" >&2
  exit 1
}
kctl() { "$KUBECTL" --context "$CONTEXT" "$@"; }

cluster_exists() {
  [[ -x $KIND ]] || command -v "$KIND" >/dev/null 2>&1 || return 1
  "$KIND" get clusters 2>/dev/null | grep -x "$KIND_CLUSTER" >/dev/null
}

cmd_engine() {
  if ! command -v docker >/dev/null 2>&1; then
    echo ">> docker: command not found" >&2
    return 1
  fi
  local out
  if ! out=$(docker info --format '{{.ServerVersion}}' 2>&1); then
    echo ">> docker is installed, but no engine answers: ${out##*$'\n'}" >&2
    return 1
  fi
  echo ">> Docker engine $out answers"
}

# What `make up` needs of the host beyond an answering engine, checked before step 1 so
# that a broken prerequisite stops it before anything is created.
cmd_preflight() {
  local cgroup file name dest onpath missing=()
  # kind's node images for Kubernetes 1.35+ refuse cgroup v1 (kind v0.31.0 release notes).
  cgroup=$(docker info --format '{{.CgroupVersion}}' 2>/dev/null) || true
  if [[ $cgroup != 2 ]]; then
    die "the Docker host runs cgroup v${cgroup:-?}, the kind node image needs cgroup v2: boot it with systemd.unified_cgroup_hierarchy=1 (or use Docker Desktop 4.3+), see README Troubleshooting"
  fi
  # What install-tool will have to download: neither installed nor on PATH at the pin.
  for dest in "$KIND" "$KUBECTL" "$HELM"; do
    [[ -x $dest ]] && continue
    file=$(basename "$dest")
    name=${file%%-*}
    if onpath=$(command -v "$name" 2>/dev/null) && [[ $(version_of "$name" "$onpath") == "${file#*-}" ]]; then
      continue
    fi
    missing+=("$name")
  done
  if ((${#missing[@]})) && ! command -v curl >/dev/null 2>&1; then
    die "curl is needed to download ${missing[*]} into $(dirname "$KIND"): install curl (or put the pinned versions on PATH)"
  fi
  # kind-config.yaml maps the traffic NodePort to this host port; a listener there makes
  # `kind create cluster` fail half-way (unless it is this cluster's own mapping).
  local port=${TRAFFIC_URL##*:}
  if ! cluster_exists && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "host port $port is in use, and kind-config.yaml maps the traffic NodePort to it: stop what listens there (Linux: ss -ltnp 'sport = :$port'; macOS: lsof -iTCP:$port -sTCP:LISTEN)"
  fi
  # kind's known issue "Pod errors due to too many open files": the node's kubelet and
  # kube-proxy need more inotify instances and watches than many distributions give.
  local sysctl=/proc/sys/fs/inotify instances watches
  if [[ -r $sysctl/max_user_instances && -r $sysctl/max_user_watches ]]; then
    instances=$(<"$sysctl/max_user_instances") watches=$(<"$sysctl/max_user_watches")
    if ((instances < 512 || watches < 524288)); then
      say "warning: fs.inotify.max_user_instances=$instances, max_user_watches=$watches: pods may fail with 'too many open files'; raise them: sudo sysctl fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288"
    fi
  fi
  say "host: Docker on cgroup v2${missing:+, will fetch ${missing[*]}}"
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# What a tool on PATH says its version is.
version_of() {
  case $1 in
    kind) "$2" version 2>/dev/null | awk '{print $2}' ;;
    helm) "$2" version --template '{{.Version}}' 2>/dev/null ;;
    kubectl) "$2" version --client 2>/dev/null | awk '/Client Version/ {print $3}' ;;
  esac
}

cmd_install_tool() {
  local dest=${1:?install-tool bin/NAME-VERSION}
  local file name version os arch url sumurl tmp want got
  file=$(basename "$dest")
  name=${file%%-*}
  version=${file#*-}
  [[ -x $dest ]] && return 0
  mkdir -p "$(dirname "$dest")"

  # Already on PATH at the pinned version: link it instead of downloading.
  local onpath
  if onpath=$(command -v "$name" 2>/dev/null) && [[ $(version_of "$name" "$onpath") == "$version" ]]; then
    ln -sfn "$onpath" "$dest"
    ln -sfn "$file" "$(dirname "$dest")/$name"
    say "$name $version: using $onpath"
    return 0
  fi

  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  case $(uname -m) in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unsupported machine $(uname -m) for $name" ;;
  esac
  case $name in
    kind)
      url=https://github.com/kubernetes-sigs/kind/releases/download/$version/kind-$os-$arch
      sumurl=$url.sha256sum
      ;;
    kubectl)
      url=https://dl.k8s.io/release/$version/bin/$os/$arch/kubectl
      sumurl=$url.sha256
      ;;
    helm)
      url=https://get.helm.sh/helm-$version-$os-$arch.tar.gz
      sumurl=$url.sha256sum
      ;;
    *) die "unknown tool $name" ;;
  esac
  command -v curl >/dev/null || die "curl is needed to download $name"
  say "$name $version: downloading $url"
  tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/download" "$url"
  want=$(curl -fsSL --retry 3 "$sumurl" | awk '{print $1}')
  got=$(sha256_of "$tmp/download")
  if [[ -z $want || $want != "$got" ]]; then
    rm -rf "$tmp"
    die "$name $version: sha256 $got does not match the published '$want'"
  fi
  if [[ $name == helm ]]; then
    tar -xzf "$tmp/download" -C "$tmp" "$os-$arch/helm"
    mv "$tmp/$os-$arch/helm" "$tmp/download"
  fi
  chmod +x "$tmp/download"
  mv "$tmp/download" "$dest"
  rm -rf "$tmp"
  ln -sfn "$file" "$(dirname "$dest")/$name"
  say "$name $version: installed $dest (sha256 checked)"
}

# kind load docker-image fails with Docker's containerd image store (kind issue #3795:
# "ctr: content digest ... not found"); kind's documented workaround is a single-platform
# archive: docker image save --platform, then kind load image-archive.
cmd_load_images() {
  (($#)) || die "load-images IMAGE..."
  if "$KIND" load docker-image --name "$KIND_CLUSTER" "$@"; then
    return 0
  fi
  local arch
  arch=$(docker version --format '{{.Server.Arch}}')
  say "kind load docker-image failed (Docker's containerd image store, kind issue #3795):"
  say "loading a linux/$arch archive instead (docker image save --platform | kind load image-archive)"
  ARCHIVE_DIR=$(mktemp -d)
  trap 'rm -rf "$ARCHIVE_DIR"' EXIT
  docker image save --platform "linux/$arch" --output "$ARCHIVE_DIR/images.tar" "$@"
  "$KIND" load image-archive --name "$KIND_CLUSTER" "$ARCHIVE_DIR/images.tar"
}

# The Alertmanager example (alerts/alertmanager/) as kube-prometheus-stack values: its
# overlay (the Secret mount) plus alertmanager.yaml under alertmanager.config, so that
# alertmanager.yaml stays the one file amtool checks.
cmd_alerting_values() {
  "$PY" - "$ROOT/alerts/alertmanager" <<'PYEOF'
import sys
from pathlib import Path

import yaml

folder = Path(sys.argv[1])
values = yaml.safe_load((folder / "kube-prometheus-stack-values.yaml").read_text())
values["alertmanager"]["config"] = yaml.safe_load((folder / "alertmanager.yaml").read_text())
print("# generated by hack/kind.sh alerting-values; do not edit")
print(yaml.safe_dump(values, sort_keys=False), end="")
PYEOF
}

# Secret modelops-alerting from the environment, never from a file in the repo. Without
# the variables an existing Secret is kept (re-running needs no secrets at hand).
cmd_alerting_secret() {
  if [[ -z ${SLACK_API_URL:-} || -z ${PAGER_TOKEN:-} ]]; then
    kctl -n "$MONITORING_NS" get secret modelops-alerting >/dev/null 2>&1 \
      || die "Secret $MONITORING_NS/modelops-alerting is missing: export SLACK_API_URL and PAGER_TOKEN and run 'make alerting' again"
    say "Secret $MONITORING_NS/modelops-alerting exists: kept"
    return 0
  fi
  # --from-file reads the values through pipes, so they never appear in a process list.
  kctl -n "$MONITORING_NS" create secret generic modelops-alerting \
    --from-file=slack-api-url=<(printf '%s' "$SLACK_API_URL") \
    --from-file=pager-token=<(printf '%s' "$PAGER_TOKEN") \
    --dry-run=client -o yaml | kctl apply -f -
}

cmd_model_sha256() {
  local dir=${1:?model-sha256 DIR}
  [[ -f $dir/model.joblib ]] || die "$dir/model.joblib is missing: run 'make models'"
  sha256_of "$dir/model.joblib"
}

# "KIND NAME NAMESPACE" for each object in a manifest file
md_refs() {
  "$PY" - "$1" <<'PYEOF'
import sys

import yaml

with open(sys.argv[1]) as f:
    for doc in yaml.safe_load_all(f):
        if doc:
            meta = doc.get("metadata", {})
            print(doc.get("kind", ""), meta.get("name", ""), meta.get("namespace", "default"))
PYEOF
}

# The example, created once: `make demo` rolls it on, and applying it again on a re-run of
# `make up` would ask for its first version, a rollback of the model.
cmd_apply_once() {
  local file=${1:?apply-once FILE} kind name ns
  while read -r kind name ns; do
    [[ $kind == ModelDeployment ]] || continue
    if kctl get modeldeployment "$name" -n "$ns" >/dev/null 2>&1; then
      say "modeldeployment/$name in $ns exists: left as it is (make demo may have rolled it on; kubectl apply -f $file starts over)"
      return 0
    fi
  done < <(md_refs "$file")
  kctl apply -f "$file"
}

cmd_wait_ready() {
  local file=${1:?wait-ready FILE} kind name ns
  while read -r kind name ns; do
    [[ $kind == ModelDeployment ]] || continue
    say "waiting for modeldeployment/$name in $ns to be Ready (up to 10m)"
    if ! kctl wait --for=condition=Ready "modeldeployment/$name" -n "$ns" --timeout=10m; then
      kctl get modeldeployment "$name" -n "$ns" -o yaml >&2 || true
      kctl get events -n "$ns" --field-selector "involvedObject.name=$name" >&2 || true
      die "modeldeployment/$name did not become Ready"
    fi
  done < <(md_refs "$file")
  kctl get modeldeployments -A
}

cmd_next_steps() {
  cat <<EOF

The cluster '$KIND_CLUSTER' is up (kubectl context $CONTEXT). Next:

  kubectl --context $CONTEXT get modeldeployments -A     # VERSION, STABLE, PHASE, READY
  make grafana        # Grafana on http://127.0.0.1:$GRAFANA_PORT (prints the login)
  make prometheus     # Prometheus on http://127.0.0.1:$PROMETHEUS_PORT
  make demo           # roll the example to version 3 as a canary while traffic runs
  make status         # what runs where
  make down           # delete the cluster

The model behind the demo NodePort answers on $TRAFFIC_URL:
  curl -s $TRAFFIC_URL/v1/model
EOF
}

# Bounded background traffic (loadtest, scenario normal) to the NodePort on loopback.
start_traffic() {
  mkdir -p "$ROOT/.run"
  (cd "$ROOT" && exec "$PY" -m loadtest --url "$TRAFFIC_URL" --scenario normal --rate 20 \
    --duration 1800 --quiet) >"$ROOT/.run/kind-demo-traffic.log" 2>&1 &
  TRAFFIC_PID=$!
}

# Stop the traffic and the watch the demo started (each PID is the process itself), whether
# they still run or not.
stop_demo_processes() {
  local pid
  for pid in ${TRAFFIC_PID:-} ${WATCH_PID:-}; do
    kill "$pid" 2>/dev/null || true
  done
  TRAFFIC_PID='' WATCH_PID=''
}

md_field() { # md_field NAME NS JSONPATH
  kctl get modeldeployment "$1" -n "$2" -o jsonpath="$3" 2>/dev/null || true
}

# demo FILE [PATCH]: make sure the ModelDeployment of FILE runs (apply it and wait when it
# does not), then, while traffic runs, apply FILE (or the merge PATCH) and watch the rollout.
cmd_demo() {
  local file=${1:?demo FILE [PATCH]} patch=${2:-}
  [[ -f $file ]] || die "$file not found"
  cluster_exists || die "no kind cluster '$KIND_CLUSTER': run 'make up' first"
  local name="" ns="" model
  read -r _ name ns < <(md_refs "$file" | awk '$1 == "ModelDeployment"' | head -n1) || true
  [[ -n $name ]] || die "$file holds no ModelDeployment"
  [[ $ns == "$MODELS_NS" ]] || die "the demo NodePort lives in namespace $MODELS_NS, $file uses $ns"

  if [[ -n $patch ]] && ! kctl get modeldeployment "$name" -n "$ns" >/dev/null 2>&1; then
    say "modeldeployment/$name is not there yet: applying $file first"
    kctl apply -f "$file"
    cmd_wait_ready "$file"
  fi
  model=$("$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "ModelDeployment":
        print(d["spec"]["model"]["name"]); break' "$file")
  kctl -n "$ns" patch service modelops-demo-traffic --type merge \
    -p "{\"spec\":{\"selector\":{\"modelops.io/model\":\"$model\"}}}" >/dev/null

  TRAFFIC_PID=
  WATCH_PID=
  trap stop_demo_processes EXIT
  say "traffic: 20 req/s to $TRAFFIC_URL/v1/predict through the Service (stable and canary pods);"
  say "         log in .run/kind-demo-traffic.log"
  start_traffic
  sleep 5
  if [[ -n $patch ]]; then
    say "patching modeldeployment/$name in $ns: $patch"
    kctl -n "$ns" patch modeldeployment "$name" --type merge -p "$patch"
  else
    say "applying $file to modeldeployment/$name in $ns"
    kctl apply -f "$file"
  fi
  local target generation
  target=$(md_field "$name" "$ns" '{.spec.model.version}')
  generation=$(md_field "$name" "$ns" '{.metadata.generation}')
  say "watching the rollout to version $target (kubectl get md -w); the canary is judged on"
  say "errors, p95 latency and drift through Prometheus"
  # A command, not the kctl function: backgrounding a function forks a subshell, and $!
  # would be that subshell while kubectl outlived the demo.
  "$KUBECTL" --context "$CONTEXT" get modeldeployment "$name" -n "$ns" -w &
  WATCH_PID=$!

  local phase="" observed stable canary deadline=$((SECONDS + 1500))
  while ((SECONDS < deadline)); do
    sleep 5
    observed=$(md_field "$name" "$ns" '{.status.observedGeneration}')
    [[ ${observed:-0} -ge $generation ]] || continue
    phase=$(md_field "$name" "$ns" '{.status.phase}')
    stable=$(md_field "$name" "$ns" '{.status.stableVersion}')
    canary=$(md_field "$name" "$ns" '{.status.canaryVersion}')
    if [[ $phase == Ready && $stable == "$target" && -z $canary ]] || [[ $phase == RolledBack ]]; then
      break
    fi
  done
  stop_demo_processes
  echo
  say "result: phase=${phase:-unknown} stableVersion=$(md_field "$name" "$ns" '{.status.stableVersion}')"
  md_field "$name" "$ns" '{range .status.history[*]}{.at}  {.version}  {.result}  {.reason}{"\n"}{end}'
  say "events of modeldeployment/$name"
  kctl get events -n "$ns" --field-selector "involvedObject.kind=ModelDeployment,involvedObject.name=$name" \
    --sort-by=.lastTimestamp || true
  say "Grafana shows it too: make grafana (folder ModelOps)"
  [[ $phase == Ready || $phase == RolledBack ]] || die "the rollout did not finish (phase '${phase:-unknown}')"
}

portforward() { # portforward SERVICE LOCAL REMOTE
  cluster_exists || die "no kind cluster '$KIND_CLUSTER': run 'make up' first"
  kctl -n "$MONITORING_NS" get "svc/$1" >/dev/null || die "service $MONITORING_NS/$1 not found: did 'make up' finish?"
  say "Ctrl-C stops the port-forward"
  exec "$KUBECTL" --context "$CONTEXT" -n "$MONITORING_NS" port-forward --address 127.0.0.1 "svc/$1" "$2:$3"
}

cmd_grafana() {
  local password
  cluster_exists || die "no kind cluster '$KIND_CLUSTER': run 'make up' first"
  password=$(kctl -n "$MONITORING_NS" get secret "$KPS_RELEASE-grafana" -o jsonpath='{.data.admin-password}' | base64 --decode)
  say "Grafana: http://127.0.0.1:$GRAFANA_PORT  user: admin  password: $password"
  say "dashboards: Dashboards > ModelOps"
  portforward "$KPS_RELEASE-grafana" "$GRAFANA_PORT" 80
}

cmd_prometheus() {
  say "Prometheus: http://127.0.0.1:$PROMETHEUS_PORT (no login); rules under Status > Rules"
  portforward "$KPS_RELEASE-prometheus" "$PROMETHEUS_PORT" 9090
}

cmd_status() {
  if ! cluster_exists; then
    say "no kind cluster '$KIND_CLUSTER' (make up creates it)"
    return 0
  fi
  say "kind cluster '$KIND_CLUSTER' (context $CONTEXT)"
  kctl get nodes -o wide
  say "helm releases"
  "$HELM" --kube-context "$CONTEXT" list -A
  say "ModelDeployments"
  kctl get modeldeployments -A 2>/dev/null || echo "(CRD not installed)"
  say "pods"
  kctl get pods -n "$MONITORING_NS"
  kctl get pods -n modelops-system 2>/dev/null || true
  kctl get pods -n "$MODELS_NS" -L modelops.io/version,modelops.io/track 2>/dev/null || true
}

cmd_down() {
  if ! cluster_exists; then
    say "no kind cluster '$KIND_CLUSTER': nothing to do"
    return 0
  fi
  "$KIND" delete cluster --name "$KIND_CLUSTER"
}

cmd=${1:-}
shift || true
case $cmd in
  engine) cmd_engine ;;
  preflight) cmd_preflight ;;
  load-images) cmd_load_images "$@" ;;
  alerting-values) cmd_alerting_values ;;
  alerting-secret) cmd_alerting_secret ;;
  install-tool) cmd_install_tool "$@" ;;
  model-sha256) cmd_model_sha256 "$@" ;;
  apply-once) cmd_apply_once "$@" ;;
  wait-ready) cmd_wait_ready "$@" ;;
  next-steps) cmd_next_steps ;;
  demo) cmd_demo "$@" ;;
  grafana) cmd_grafana ;;
  prometheus) cmd_prometheus ;;
  status) cmd_status ;;
  down) cmd_down ;;
  *) die "usage: hack/kind.sh engine|preflight|load-images|alerting-values|alerting-secret|install-tool|model-sha256|apply-once|wait-ready|next-steps|demo|grafana|prometheus|status|down" ;;
esac
