#!/usr/bin/env bash
# Install the pinned test tools (hack/versions.env) the way setup-envtest does:
# heavy outputs go to a versioned cache OUTSIDE the work tree, shared by every
# clone on this machine, and .cache/bin + .cache/crds in the repo link to it.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, etcd, and the real
#   node's kubelet and kube-proxy
#                    go build from k8s.io/kubernetes through a generated wrapper
#                    module (staging modules replaced by v0.<minor>.<patch>)
#   containerd, containerd-shim-runc-v2, ctr   (the real node's CRI runtime)
#                    go install github.com/containerd/containerd/v2/cmd/...@<pin>
#   coredns          go install github.com/coredns/coredns@<pin> (the real node's cluster DNS)
#   keda, keda-adapter  go build of cmd/operator and cmd/adapter of github.com/kedacore/keda/v2@<pin>
#                    (the optional autoscaler: its operator and external metrics server)
#   metrics-server   go install sigs.k8s.io/metrics-server/cmd/metrics-server@<pin> (the resource
#                    metrics API the chart's CPU HorizontalPodAutoscaler reads; step keda)
#   versitygw        go install github.com/versity/versitygw/cmd/versitygw@<pin> (the S3 server)
#   traefik          go build of ./cmd/traefik in a copy of github.com/traefik/traefik/v3@<pin>
#                    (the Gateway API data plane of the real node's gateway test)
#   pause            gcc -static from build/pause/linux/pause.c of k8s.io/kubernetes
#   kwok             go install sigs.k8s.io/kwok/cmd/kwok@<pin>
#   helm, kubectl    layer.zip inside the pinned npm kubectl layer package
#   helm3            layer.zip inside an older npm kubectl layer package (the charts support both)
#   prometheus, promtool, alertmanager   Debian packages
#   runc, CNI plugins, iptables, socat   Debian packages (the real node)
#   monitoring.coreos.com CRDs           the prometheus-operator Go module
#   prometheus-operator, prometheus-config-reloader
#                    go build from their Go module through a wrapper module (its go.mod
#                    replaces sub-modules by directories, which `go install` refuses)
#   the prometheus and alertmanager prometheus-operator runs in pods (upstream's, at the
#   versions it deploys by default; Debian's prometheus lacks Kubernetes discovery)
#                    prometheus: go build in a copy of its module with Kubernetes discovery
#                    only (upstream's plugins.yml); go install of alertmanager
#   kube-state-metrics  go install k8s.io/kube-state-metrics/v2@<pin> (the kube_* series kube-
#                    prometheus-stack scrapes; in a pod on the real node, like the three above)
#   gateway.networking.k8s.io CRDs       the gateway-api Go module (standard channel)
#   keda.sh, eventing.keda.sh CRDs       the KEDA Go module (config/crd/bases)
#
# Idempotent: a warm run checks, relinks and says "nothing to do".
# Usage: hack/install-tools.sh [STEP...]   steps: debian layer helm3 crds kwok kube node s3 promop gateway keda
# (default: all; containerd and coredns of `node`, promop, keda and metrics-server of `keda`,
# versitygw of `s3` and traefik of `gateway` build in the background while the other steps run.)
# Environment: MODELOPS_CACHE (cache root, default ~/.cache/modelops-bundle),
# MODELOPS_SKIP_APT=1 (do not touch Debian packages), MODELOPS_TOOLS_DETACH=1 (leave the keda
# and traefik builds, the slowest, running at nice 19 when the rest is ready: their links in
# .cache/bin dangle until each publishes its cache entry ENTRY, and devstack/paths.py's
# find_tool waits on ENTRY.lock, which the build holds until it ends; its log is ENTRY.log).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
source "$ROOT/hack/versions.env"

CACHE_ROOT=${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops-bundle}
BIN=$ROOT/.cache/bin
CRDS=$ROOT/.cache/crds
# Go's module and build caches stay at their defaults (shared, fast rebuilds).
# Static binaries like upstream's; never download another Go toolchain.
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
# The flags of every Go build below, in one place (go applies each to the commands that know
# it): no VCS stamp (module copies are no repositories), trimmed paths, and no DWARF from the
# compiler: every binary is linked with -s -w, which dropped that DWARF anyway. Measured cold on
# containerd (empty build cache, both at once): 158 -> 141 CPU-s (-11%), its build cache 575 ->
# 449 MiB; same sizes, same versions (the layout differs: not byte-identical). hack/images.sh
# builds its helm with the same flags, so the two share the build cache.
export GOFLAGS="-buildvcs=false -trimpath -gcflags=all=-dwarf=false"

PROMOP_BINS=(prometheus-operator prometheus-config-reloader)
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler etcd kubelet kube-proxy)
CONTAINERD_BINS=(containerd containerd-shim-runc-v2 ctr)
# The CNI plugins the real node uses, from Debian's containernetworking-plugins.
CNI_DIR=/usr/lib/cni
CNI_PLUGINS=(bridge host-local loopback portmap)
START=$SECONDS
WORK_DONE=0
STILL_BUILDING=() # detached builds left running (ensure_built)

say() { printf '==> %s\n' "$*"; }
detail() { printf '    %s\n' "$*"; }
die() {
  printf 'install-tools: %s\n' "$*" >&2
  exit 1
}
elapsed() { printf '%dm%02ds' $(((SECONDS - $1) / 60)) $(((SECONDS - $1) % 60)); }
# Look a command up on PATH without .cache/bin (whose links point back here).
syswhich() {
  local IFS=: d
  for d in $PATH; do
    [[ $d == "$BIN" || $d == "$BIN/" || -z $d ]] && continue
    [[ -x $d/$1 && ! -d $d/$1 ]] && { echo "$d/$1"; return 0; }
  done
  return 1
}
need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }

mkdir -p "$CACHE_ROOT" "$BIN" "$CRDS"

# Two clones on one machine may run this at once: one builds, the other waits. flock(1) holds
# the lock around the whole run, and -o keeps it from every child: a descriptor of it inherited
# by whatever outlives the run (a detached build) made the next run wait for that (cold run,
# 2026-12-07: `make lint` waited for keda).
if [[ -z ${_MODELOPS_INSTALL_LOCKED:-} ]]; then
  if ! flock -n "$CACHE_ROOT/.install.lock" true; then
    say "another install-tools run holds $CACHE_ROOT/.install.lock; waiting for it"
  fi
  _MODELOPS_INSTALL_LOCKED=1 exec flock -o "$CACHE_ROOT/.install.lock" "${BASH_SOURCE[0]}" "$@"
fi
unset _MODELOPS_INSTALL_LOCKED

link() { # link TARGET NAME: .cache/bin/NAME -> TARGET, only when it differs
  local target=$1 name=$2
  if [[ "$(readlink "$BIN/$name" 2>/dev/null || true)" != "$target" ]]; then
    ln -sfn "$target" "$BIN/$name"
    detail "linked .cache/bin/$name -> $target"
    WORK_DONE=1
  fi
}

# Go prints one "go: downloading" line per module; show a running count instead.
go_progress() {
  awk '/^go: downloading / { n++; if (n % 40 == 1) printf "    ... downloading Go modules (%d)\n", n; fflush(); next }
       { print; fflush() }'
}

# Scratch directories carry the pid of the run (or detached build) that made them: each
# removes its own at exit, and a run removes those of runs that died before they could.
SCRATCH_OWNER=$$
scratch() { mktemp -d "$CACHE_ROOT/.tmp.$SCRATCH_OWNER.XXXXXX"; }
drop_scratch() { rm -rf "$CACHE_ROOT/.tmp.$SCRATCH_OWNER".* 2>/dev/null || true; }
# publish OUT DIR: a finished build's output directory OUT becomes the cache entry DIR (a
# partial one left by an interrupted run goes first).
publish() {
  mkdir -p "$(dirname "$2")"
  rm -rf "$2"
  mv "$1" "$2"
}
trap drop_scratch EXIT
for d in "$CACHE_ROOT"/.tmp.*; do
  owner=${d#"$CACHE_ROOT/.tmp."}
  if [[ -e $d ]] && ! kill -0 "${owner%%.*}" 2>/dev/null; then rm -rf "$d"; fi
done

# go_module FIELD MODULE@VERSION: download a Go module and print FIELD of `go mod download
# -json` (Dir: its read-only source in the module cache; GoMod: its go.mod).
go_module() {
  (cd "$(scratch)" && GOFLAGS=-mod=mod go mod download -json "$2") |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1]) or sys.exit(d.get("Error")))' "$1"
}

# go_module_copy MODULE@VERSION DEST: a writable copy of a module's source, to build in (its
# go.mod's own replace directives apply, which `go install mod@version` refuses).
go_module_copy() {
  cp -r "$(go_module Dir "$1")" "$2"
  chmod -R u+w "$2"
}

# --- Debian: prometheus, promtool, alertmanager; the real node's runc, CNI, iptables
install_debian() {
  if [[ "${MODELOPS_SKIP_APT:-}" == 1 ]]; then
    detail "MODELOPS_SKIP_APT=1: leaving Debian packages alone"
    return
  fi
  local missing=() p
  syswhich prometheus >/dev/null && syswhich promtool >/dev/null || missing+=(prometheus)
  syswhich prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  syswhich runc >/dev/null || missing+=(runc)
  syswhich iptables >/dev/null && syswhich ip6tables >/dev/null || missing+=(iptables)
  syswhich socat >/dev/null || missing+=(socat)
  syswhich shellcheck >/dev/null || missing+=(shellcheck) # make lint
  for p in "${CNI_PLUGINS[@]}"; do
    [[ -x $CNI_DIR/$p ]] || { missing+=(containernetworking-plugins) && break; }
  done
  if ((${#missing[@]})); then
    local t=$SECONDS sudo=()
    ((EUID == 0)) || sudo=(sudo)
    say "Debian packages: installing ${missing[*]} (apt-get update first)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
    detail "done in $(elapsed $t)"
    WORK_DONE=1
  fi
  link "$(syswhich prometheus)" prometheus
  link "$(syswhich promtool)" promtool
  # Debian names the binary prometheus-alertmanager; tests call alertmanager.
  link "$(syswhich prometheus-alertmanager)" alertmanager
  syswhich amtool >/dev/null && link "$(syswhich amtool)" amtool
  link "$(syswhich runc)" runc
  return 0
}

# --- helm 4 and kubectl, and helm 3, from npm layer packages ---------------
# layer_unpack PACKAGE VERSION DEST TOOL...: TOOL/TOOL of the layer.zip inside the npm
# package PACKAGE@VERSION (an AWS CDK kubectl layer: release builds of kubectl and helm),
# executable in DEST.
layer_unpack() {
  local package=$1 version=$2 dest=$3 tool tmp
  shift 3
  need npm "to fetch $package"
  tmp=$(scratch)
  (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
  mkdir -p "$dest"
  for tool in "$@"; do install -m 0755 "$tmp/layer/$tool/$tool" "$dest/$tool"; done
}

install_layer() {
  local dir=$CACHE_ROOT/kubectl-layer/$KUBECTL_LAYER_VERSION
  if [[ ! -x $dir/helm || ! -x $dir/kubectl ]]; then
    local t=$SECONDS tmp hv kv
    tmp=$(scratch)
    say "helm + kubectl: npm pack $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION"
    layer_unpack "$KUBECTL_LAYER_PACKAGE" "$KUBECTL_LAYER_VERSION" "$tmp/out" helm kubectl
    hv=$("$tmp/out/helm" version --template '{{.Version}}')
    kv=$("$tmp/out/kubectl" version --client -o json | python3 -c \
      'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')
    [[ $hv == "$HELM_VERSION" ]] || die "layer ships helm $hv, versions.env says $HELM_VERSION"
    [[ $kv == "$KUBECTL_VERSION" ]] || die "layer ships kubectl $kv, versions.env says $KUBECTL_VERSION"
    publish "$tmp/out" "$dir"
    detail "helm $hv, kubectl $kv in $(elapsed $t)"
    WORK_DONE=1
  fi
  link "$dir/helm" helm
  link "$dir/kubectl" kubectl
}

# --- helm 3 (the charts support helm 3 as well as helm 4): an older layer's helm ---
# A release build, like helm 4's, in seconds: the go install of helm 3 it replaces held the
# cold run's foreground for 7m26s (2026-12-07, beside the background builds).
install_helm3() {
  local dir=$CACHE_ROOT/helm3/$HELM3_VERSION
  if [[ ! -x $dir/helm ]]; then
    local t=$SECONDS tmp v
    tmp=$(scratch)
    say "helm $HELM3_VERSION: npm pack $HELM3_LAYER_PACKAGE@$HELM3_LAYER_VERSION"
    layer_unpack "$HELM3_LAYER_PACKAGE" "$HELM3_LAYER_VERSION" "$tmp/out" helm
    v=$("$tmp/out/helm" version --template '{{.Version}}')
    [[ $v == "$HELM3_VERSION" ]] || die "layer ships helm $v, versions.env says $HELM3_VERSION"
    publish "$tmp/out" "$dir"
    detail "helm $v in $(elapsed $t)"
    WORK_DONE=1
  fi
  link "$dir/helm" helm3
}

# --- Files from Go modules: the CRDs (monitoring.coreos.com, gateway.networking.k8s.io,
# keda.sh) and Traefik's RBAC; from the module, not a build, so ready while a build may run ---
# module_files NAME MODULE VERSION DIR DEST FILE...: copy DIR/FILE of the Go module
# MODULE@VERSION into the cache once, then into DEST under .cache (copies, not links: what the
# tests apply, whatever the cache does).
module_files() {
  local name=$1 module=$2 version=$3 sub=$4 dest=$5
  shift 5
  local dir=$CACHE_ROOT/${dest##*/}/$name-$version f complete=1
  [[ -f $dir/.complete ]] || complete=0
  for f in "$@"; do [[ -f $dir/$f ]] || complete=0; done # a file added to the list
  if ((!complete)); then
    need go "to fetch the $module module"
    local t=$SECONDS tmp mod
    tmp=$(scratch)
    say "$name: $module $version (Go module)"
    mod=$(go_module Dir "$module@$version")
    mkdir -p "$tmp/out"
    for f in "$@"; do
      [[ -f $mod/$sub/$f ]] || die "no $sub/$f in $module $version"
      install -m 0644 "$mod/$sub/$f" "$tmp/out/"
    done
    echo "$version" >"$tmp/out/.complete"
    publish "$tmp/out" "$dir"
    detail "$# files in $(elapsed $t)"
    WORK_DONE=1
  fi
  local changed=0
  mkdir -p "$dest"
  for f in "$@"; do
    cmp -s "$dir/$f" "$dest/$f" || { cp "$dir/$f" "$dest/" && changed=1; }
  done
  if ((changed)); then
    detail "copied the $name files to ${dest#"$ROOT/"}/"
    WORK_DONE=1
  fi
}

install_crds() {
  module_files prometheus-operator github.com/prometheus-operator/prometheus-operator \
    "$PROMETHEUS_OPERATOR_VERSION" example/prometheus-operator-crd "$CRDS" \
    monitoring.coreos.com_{alertmanagerconfigs,alertmanagers,podmonitors,probes,prometheusagents,prometheuses,prometheusrules,scrapeconfigs,servicemonitors,thanosrulers}.yaml
  # the standard channel's kinds: the HTTPRoute the operator weighs and what it names, and
  # the GRPCRoute and BackendTLSPolicy that Traefik (the real node's data plane) watches too
  module_files gateway-api sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" config/crd/standard "$CRDS" \
    gateway.networking.k8s.io_{gatewayclasses,gateways,httproutes,referencegrants,grpcroutes,backendtlspolicies}.yaml
  # what KEDA's operator watches
  module_files keda github.com/kedacore/keda/v2 "$KEDA_VERSION" config/crd/bases "$CRDS" \
    keda.sh_{scaledobjects,scaledjobs,triggerauthentications,clustertriggerauthentications}.yaml \
    eventing.keda.sh_{cloudeventsources,clustercloudeventsources}.yaml
  if [[ -L $CRDS/keda ]]; then # where the keda build's copy was linked before
    rm "$CRDS/keda"
    WORK_DONE=1
  fi
  local want="prometheus-operator $PROMETHEUS_OPERATOR_VERSION, gateway-api $GATEWAY_API_VERSION, keda $KEDA_VERSION"
  if [[ "$(cat "$CRDS/VERSION" 2>/dev/null || true)" != "$want" ]]; then
    echo "$want" >"$CRDS/VERSION"
    WORK_DONE=1
  fi
}

# go_build_wrapped OUT MODULE VERSION LDFLAGS PKG...: go build PKGs (into directory OUT) of a
# module whose go.mod has replace directives (`go install mod@version` refuses those) through
# a wrapper module that requires it and repeats its replaces; a sub-module replaced by a
# directory of the same repository is required at the same version. So the dependency
# versions are upstream's own.
go_build_wrapped() {
  local out=$1 mod=$2 version=$3 ld=$4 pkg upstream src
  shift 4
  src=$(scratch)
  (
    cd "$src"
    export GOFLAGS="$GOFLAGS -mod=mod"
    printf 'module local/modelops-wrapper\n\ngo 1.24.0\n' >go.mod
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg"; done
      printf ')\n'
    } >tools.go
    upstream=$(go_module GoMod "$mod@$version")
    go mod edit -require="$mod@$version"
    go mod edit -json "$upstream" | python3 -c '
import json, sys
version = sys.argv[1]
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    at = lambda m: m["Path"] + ("@" + m["Version"] if m.get("Version") else "")
    if new["Path"].startswith("."):
        print("-require=" + old["Path"] + "@" + version)
    else:
        print("-replace=" + at(old) + "=" + at(new))' "$version" |
      while read -r edit; do go mod edit "$edit"; done
    go mod tidy 2>&1 | go_progress
    mkdir -p "$out"
    for pkg in "$@"; do
      go build -ldflags "$ld" -o "$out/" "$pkg" 2>&1 | go_progress
    done
  )
}

# prometheus_ldflags VERSION: the version stamp of prometheus/common, as upstream's promu sets it.
prometheus_ldflags() {
  local p=github.com/prometheus/common/version
  echo "-s -w -X $p.Version=${1#v} -X $p.Revision=$1 -X $p.Branch=modelops-rig"
}

# --- prometheus-operator and prometheus-config-reloader (same module as the CRDs) ---
promop_dir() { echo "$CACHE_ROOT/prometheus-operator/$PROMETHEUS_OPERATOR_VERSION"; }
promop_built() {
  local b
  for b in "${PROMOP_BINS[@]}"; do [[ -x $(promop_dir)/$b ]] || return 1; done
  [[ -d $(promop_dir)/manifests/prometheus-operator && -d $(promop_dir)/manifests/prometheus ]]
}
# Runs in the background (its output prefixed) while the other steps build. The wrapper
# module requires the operator and its two sub-modules at the pin, so the dependency
# versions are the ones upstream's go.mod lists; the ldflags are upstream's Makefile's.
build_promop() {
  local dir t=$SECONDS tmp v mod p=github.com/prometheus-operator/prometheus-operator
  dir=$(promop_dir)
  tmp=$(scratch)
  say "prometheus-operator $PROMETHEUS_OPERATOR_VERSION: go build (7 min cold on 2 cores beside the prometheus-server build, measured)"
  go_build_wrapped "$tmp/out" "$p" "$PROMETHEUS_OPERATOR_VERSION" \
    "$(prometheus_ldflags "$PROMETHEUS_OPERATOR_VERSION")" "$p/cmd/operator" "$p/cmd/prometheus-config-reloader"
  mv "$tmp/out/operator" "$tmp/out/prometheus-operator"
  # Upstream's manifests for running it (operator Deployment, RBAC, Service, ServiceMonitor;
  # Prometheus' RBAC): devstack/prometheus_operator.py applies them with the local images.
  mod=$(go_module Dir "$p@$PROMETHEUS_OPERATOR_VERSION")
  mkdir -p "$tmp/out/manifests"
  cp -r "$mod/example/rbac/prometheus-operator" "$mod/example/rbac/prometheus" "$tmp/out/manifests/"
  chmod -R u+w,a+rX "$tmp/out/manifests"
  v=$("$tmp/out/prometheus-operator" --version 2>&1 | head -1)
  [[ $v == *"${PROMETHEUS_OPERATOR_VERSION#v}"* ]] ||
    die "prometheus-operator reports '$v', versions.env says $PROMETHEUS_OPERATOR_VERSION"
  publish "$tmp/out" "$dir"
  detail "$v in $(elapsed $t)"
}

# --- kube-state-metrics, which kube-prometheus-stack runs beside Prometheus ---------------
ksm_dir() { echo "$CACHE_ROOT/kube-state-metrics/$KUBE_STATE_METRICS_VERSION"; }
ksm_built() { [[ -x $(ksm_dir)/kube-state-metrics && -d $(ksm_dir)/manifests ]]; }
# Background job like prometheus-operator; the version stamp is upstream's Makefile's.
build_ksm() {
  local dir t=$SECONDS tmp v mod p=k8s.io/kube-state-metrics/v2
  dir=$(ksm_dir)
  tmp=$(scratch)
  say "kube-state-metrics $KUBE_STATE_METRICS_VERSION: go install (about 2 min cold on 2 cores, measured alone)"
  (cd "$tmp" && GOBIN="$tmp/out" go install -ldflags "$(prometheus_ldflags "$KUBE_STATE_METRICS_VERSION")" \
    "$p@$KUBE_STATE_METRICS_VERSION" 2>&1 | go_progress)
  # Upstream's standard deployment (Deployment, Service, ServiceAccount, RBAC):
  # devstack/prometheus_operator.py applies it with the local image.
  mod=$(go_module Dir "$p@$KUBE_STATE_METRICS_VERSION")
  mkdir -p "$tmp/out/manifests"
  cp "$mod"/examples/standard/{cluster-role,cluster-role-binding,deployment,service-account,service}.yaml \
    "$tmp/out/manifests/"
  chmod -R u+w,a+rX "$tmp/out/manifests"
  v=$("$tmp/out/kube-state-metrics" version 2>&1 | head -1)
  [[ $v == *"version ${KUBE_STATE_METRICS_VERSION#v} "* ]] ||
    die "kube-state-metrics reports '$v', versions.env says $KUBE_STATE_METRICS_VERSION"
  publish "$tmp/out" "$dir"
  detail "$v in $(elapsed $t)"
}

# --- the Prometheus and Alertmanager that prometheus-operator runs in pods ---------------
# Debian's prometheus is built without Kubernetes service discovery, which every
# ServiceMonitor needs: these are upstream's, at the versions the pinned operator deploys by
# default (checked), built from their Go modules like the operator.
promserver_dir() { echo "$CACHE_ROOT/prometheus-server/prometheus-$PROMETHEUS_VERSION-alertmanager-$ALERTMANAGER_VERSION"; }
promserver_built() { [[ -x $(promserver_dir)/prometheus && -x $(promserver_dir)/alertmanager ]]; }
build_promserver() {
  local dir t=$SECONDS tmp defaults major minor patch
  dir=$(promserver_dir)
  tmp=$(scratch)
  say "prometheus $PROMETHEUS_VERSION, alertmanager $ALERTMANAGER_VERSION: go build (7 min cold on 2 cores beside the prometheus-operator build, measured)"
  defaults=$(go_module Dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")/pkg/operator/defaults.go
  grep -q "DefaultAlertmanagerVersion = \"$ALERTMANAGER_VERSION\"" "$defaults" ||
    die "prometheus-operator $PROMETHEUS_OPERATOR_VERSION deploys another Alertmanager: set ALERTMANAGER_VERSION to $(sed -n 's/.*DefaultAlertmanagerVersion = "\(.*\)"/\1/p' "$defaults")"
  grep -q "\"$PROMETHEUS_VERSION\"," "$defaults" ||
    die "PROMETHEUS_VERSION $PROMETHEUS_VERSION is not in prometheus-operator $PROMETHEUS_OPERATOR_VERSION's compatibility matrix"
  # Prometheus' Go module numbers v3.5.0 as v0.305.0. Its service discovery plugins are
  # chosen at build time (upstream's README: edit plugins.yml, `make plugins`): the pods
  # need Kubernetes discovery only; leaving out the other 23 leaves out their cloud SDKs.
  IFS=. read -r major minor patch <<<"${PROMETHEUS_VERSION#v}"
  go_module_copy "github.com/prometheus/prometheus@v0.$((major * 100 + minor)).$patch" "$tmp/src"
  (
    cd "$tmp/src"
    echo "- github.com/prometheus/prometheus/discovery/kubernetes" >plugins.yml
    go generate -tags plugins ./plugins 2>&1 | go_progress
    go build -ldflags "$(prometheus_ldflags "$PROMETHEUS_VERSION")" \
      -o "$tmp/out/prometheus" ./cmd/prometheus 2>&1 | go_progress
  )
  (cd "$tmp" && GOBIN="$tmp/out" go install \
    -ldflags "$(prometheus_ldflags "$ALERTMANAGER_VERSION")" \
    "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION" 2>&1 | go_progress)
  "$tmp/out/prometheus" --version 2>&1 | grep -q "version ${PROMETHEUS_VERSION#v} " ||
    die "prometheus reports '$("$tmp/out/prometheus" --version 2>&1 | head -1)', not $PROMETHEUS_VERSION"
  publish "$tmp/out" "$dir"
  detail "prometheus $PROMETHEUS_VERSION, alertmanager $ALERTMANAGER_VERSION in $(elapsed $t)"
}

install_promop() {
  need go "to build prometheus-operator"
  ensure_built prometheus-operator promop_built build_promop "${PROMOP_JOB:-}"
  ensure_built prometheus-server promserver_built build_promserver "${PROMSERVER_JOB:-}"
  ensure_built kube-state-metrics ksm_built build_ksm "${KSM_JOB:-}"
  local b
  for b in "${PROMOP_BINS[@]}"; do link "$(promop_dir)/$b" "$b"; done
  link "$(ksm_dir)/kube-state-metrics" kube-state-metrics
  # Versioned names: .cache/bin/prometheus and alertmanager are Debian's (the process tier).
  link "$(promserver_dir)/prometheus" "prometheus-$PROMETHEUS_VERSION"
  link "$(promserver_dir)/alertmanager" "alertmanager-$ALERTMANAGER_VERSION"
  # Copies, like .cache/crds: what the rig applies, whatever the cache does.
  copy_manifests "$(promop_dir)/manifests" prometheus-operator "example/rbac"
  copy_manifests "$(ksm_dir)/manifests" kube-state-metrics "examples/standard"
}

# copy_manifests DIR NAME WHAT: upstream's manifests in DIR to .cache/NAME, when they differ.
copy_manifests() {
  local src=$1 dest=$ROOT/.cache/$2
  if ! diff -rq "$src" "$dest" >/dev/null 2>&1; then
    rm -rf "$dest"
    cp -r "$src" "$dest"
    detail "copied upstream's $3 manifests to .cache/$2/"
    WORK_DONE=1
  fi
}

# --- kwok -----------------------------------------------------------------
install_kwok() {
  local dir=$CACHE_ROOT/kwok/$KWOK_VERSION
  if [[ ! -x $dir/kwok || ! -f $dir/stages/pod-ready.yaml ]]; then
    need go "to build kwok"
    local t=$SECONDS tmp mod
    tmp=$(scratch)
    say "kwok $KWOK_VERSION: go install (a few minutes cold)"
    (cd "$tmp" && GOBIN="$tmp/out" \
      go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" 2>&1 | go_progress)
    # kwok drops its built-in pod stages once --config holds any pod stage, so
    # the rig passes these (the built-in "fast" ones) beside its own.
    mod=$(go_module Dir "sigs.k8s.io/kwok@$KWOK_VERSION")
    mkdir -p "$tmp/out/stages"
    cp "$mod"/kustomize/stage/pod/fast/pod-*.yaml "$tmp/out/stages/"
    chmod 0644 "$tmp"/out/stages/*.yaml
    publish "$tmp/out" "$dir"
    detail "$("$dir/kwok" --version 2>&1 | head -1) in $(elapsed $t)"
    WORK_DONE=1
  fi
  link "$dir/kwok" kwok
}

# --- kube-apiserver, kube-controller-manager, kube-scheduler, etcd --------
kube_ldflags() {
  local minor=${KUBERNETES_VERSION#*.}
  minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ld"
}

# Everything that shapes the binaries; a cache entry built otherwise is rebuilt.
KUBE_TAGS=selinux,notest
kube_recipe() {
  printf 'kubernetes=%s etcd=%s go=%s tags=%s ldflags=%s\n' "$KUBERNETES_VERSION" \
    "$ETCD_VERSION" "$(go env GOVERSION)" "$KUBE_TAGS" "$(kube_ldflags)"
}

install_kube() {
  local dir=$CACHE_ROOT/kube/v$KUBERNETES_VERSION
  local recipe b ok=1
  need go "to build the control plane"
  recipe=$(kube_recipe)
  for b in "${KUBE_BINS[@]}"; do [[ -x $dir/$b ]] || ok=0; done
  [[ "$(cat "$dir/.recipe" 2>/dev/null || true)" == "$recipe" ]] || ok=0
  if ((!ok)); then
    local t=$SECONDS src=$CACHE_ROOT/kube/src-v$KUBERNETES_VERSION tmp kmod m
    say "control plane + kubelet + kube-proxy v$KUBERNETES_VERSION, etcd $ETCD_VERSION: go build from k8s.io/kubernetes"
    detail "cold: 7-20 min on 2 cores, by load (measured); warm Go build cache: under a minute"
    rm -rf "$src"
    mkdir -p "$src"
    tmp=$(scratch)
    (
      cd "$src"
      export GOFLAGS="$GOFLAGS -mod=mod"
      # The wrapper module: k8s.io/kubernetes requires its staging modules at
      # v0.0.0 replaced by ./staging/...; replace each by its published v0.X.Y.
      printf 'module local/modelops-kube\n\ngo 1.25.0\n' >go.mod
      cat >tools.go <<'EOF'
//go:build tools

// Package tools pins the commands built from this wrapper module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
      kmod=$(go_module GoMod "k8s.io/kubernetes@v$KUBERNETES_VERSION")
      local mods
      mods=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kmod")
      [[ -n $mods ]] || die "no staging replaces found in $kmod"
      for m in $mods; do
        go mod edit -replace="$m=$m@v0.${KUBERNETES_VERSION#1.}"
      done
      go mod edit -require="k8s.io/kubernetes@v$KUBERNETES_VERSION" \
        -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
      detail "wrapper module: $(wc -w <<<"$mods") staging modules at v0.${KUBERNETES_VERSION#1.}; go mod tidy"
      go mod tidy 2>&1 | go_progress
      local got
      got=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
      [[ $got == "v$ETCD_VERSION" ]] ||
        die "k8s.io/kubernetes@v$KUBERNETES_VERSION needs etcd $got; set ETCD_VERSION in hack/versions.env"
      detail "go build (progress: packages compiled; full log in $src/build.log)"
      local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
        k8s.io/kubernetes/cmd/kube-scheduler go.etcd.io/etcd/server/v3
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
      if ! go build -v -tags "$KUBE_TAGS" -ldflags "$(kube_ldflags)" -o "$tmp/" "${pkgs[@]}" \
        2>&1 | tee "$src/build.log" | awk -v t0="$(date +%s)" '
          /^go: downloading / { next }
          { n++ }
          n % 250 == 0 { printf "    ... %d packages compiled, %ds\n", n, systime() - t0; fflush() }'; then
        tail -n 40 "$src/build.log" >&2
        die "go build failed (log: $src/build.log)"
      fi
    )
    # go names a /vN module's command after the element before /vN.
    mv "$tmp/server" "$tmp/etcd"
    "$tmp/kube-apiserver" --version | grep -qx "Kubernetes v$KUBERNETES_VERSION" ||
      die "kube-apiserver reports '$("$tmp/kube-apiserver" --version)', not v$KUBERNETES_VERSION"
    for b in kubelet kube-proxy; do
      "$tmp/$b" --version | grep -qx "Kubernetes v$KUBERNETES_VERSION" ||
        die "$b reports '$("$tmp/$b" --version)', not v$KUBERNETES_VERSION"
    done
    "$tmp/etcd" --version | grep -q "etcd Version: $ETCD_VERSION" ||
      die "etcd reports '$("$tmp/etcd" --version | head -1)', not $ETCD_VERSION"
    echo "$recipe" >"$tmp/.recipe"
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir"
    mkdir -p "$dir"
    for b in "${KUBE_BINS[@]}"; do mv "$tmp/$b" "$dir/$b"; done
    mv "$tmp/.recipe" "$dir/.recipe"
    detail "built in $(elapsed $t): $("$dir/kube-apiserver" --version), etcd $ETCD_VERSION"
    WORK_DONE=1
  fi
  for b in "${KUBE_BINS[@]}"; do link "$dir/$b" "$b"; done
}

# --- the real node: containerd (CRI runtime), CoreDNS and the pause binary ---
containerd_dir() { echo "$CACHE_ROOT/containerd/$CONTAINERD_VERSION"; }
containerd_built() {
  local b
  for b in "${CONTAINERD_BINS[@]}"; do [[ -x $(containerd_dir)/$b ]] || return 1; done
}
# Runs in the background (its output prefixed) while the other steps build.
build_containerd() {
  local dir t=$SECONDS tmp p pkgs=() v
  dir=$(containerd_dir)
  tmp=$(scratch)
  say "containerd $CONTAINERD_VERSION: go install (about 4 min cold on 2 cores)"
  for p in "${CONTAINERD_BINS[@]}"; do
    pkgs+=("github.com/containerd/containerd/v2/cmd/$p@$CONTAINERD_VERSION")
  done
  # The tags drop snapshotters the node never uses (btrfs, devmapper, zfs need cgo).
  (cd "$tmp" && GOBIN="$tmp/out" go install \
    -tags no_btrfs,no_devmapper,no_zfs -ldflags "-s -w" "${pkgs[@]}" 2>&1 | go_progress)
  v=$("$tmp/out/containerd" --version)
  [[ $v == *" ${CONTAINERD_VERSION#v}"* || $v == *" $CONTAINERD_VERSION"* ]] ||
    die "containerd reports '$v', versions.env says $CONTAINERD_VERSION"
  publish "$tmp/out" "$dir"
  detail "$v in $(elapsed $t)"
}

coredns_dir() { echo "$CACHE_ROOT/coredns/$COREDNS_VERSION"; }
coredns_built() { [[ -x $(coredns_dir)/coredns ]]; }
# The cluster's DNS server, with the plugin set of its own plugin.cfg (kubernetes among them;
# the rig's Corefile uses no plugin that sends anywhere). Background job like containerd.
build_coredns() {
  local dir t=$SECONDS tmp v
  dir=$(coredns_dir)
  tmp=$(scratch)
  say "coredns $COREDNS_VERSION: go install (about 3 min cold on 2 cores)"
  (cd "$tmp" && GOBIN="$tmp/out" go install \
    -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" 2>&1 | go_progress)
  v=$("$tmp/out/coredns" -version | head -1)
  [[ $v == *"-${COREDNS_VERSION#v}" ]] || die "coredns reports '$v', versions.env says $COREDNS_VERSION"
  publish "$tmp/out" "$dir"
  detail "$v in $(elapsed $t)"
}

# --- KEDA: the optional autoscaler (operator + external metrics server) and its CRDs ---
keda_dir() { echo "$CACHE_ROOT/keda/$KEDA_VERSION"; }
keda_built() { [[ -x $(keda_dir)/keda && -x $(keda_dir)/keda-adapter ]]; }
# KEDA's go.mod has replace directives, so `go install pkg@version` refuses it: build inside
# a copy of the module zip, the way its Makefile does (version stamped by the same -X flags).
# Background job like containerd: by far the largest build here (every scaler's cloud SDK).
build_keda() {
  local dir t=$SECONDS tmp mod
  dir=$(keda_dir)
  tmp=$(scratch)
  say "keda $KEDA_VERSION: go build of cmd/operator and cmd/adapter (about 20 min cold on 2 cores)"
  go_module_copy "github.com/kedacore/keda/v2@$KEDA_VERSION" "$tmp/src"
  fetch_then_yield "$tmp/src" ./cmd/operator ./cmd/adapter
  local ld="-s -w -X=github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
  (cd "$tmp/src" && go build -ldflags "$ld" -o "$tmp/out/keda" ./cmd/operator 2>&1 | go_progress)
  (cd "$tmp/src" && go build -ldflags "$ld" -o "$tmp/out/keda-adapter" ./cmd/adapter 2>&1 | go_progress)
  [[ -x $tmp/out/keda && -x $tmp/out/keda-adapter ]] || die "keda build left no binaries"
  publish "$tmp/out" "$dir"
  detail "keda $KEDA_VERSION in $(elapsed $t)"
}

# --- metrics-server: the resource metrics API (kubectl top, CPU and memory autoscalers) ---
metrics_server_dir() { echo "$CACHE_ROOT/metrics-server/$METRICS_SERVER_VERSION"; }
metrics_server_built() { [[ -x $(metrics_server_dir)/metrics-server ]]; }
# Background job beside keda; the version stamp is upstream's Makefile's (client-go's version).
build_metrics_server() {
  local dir t=$SECONDS tmp v p=k8s.io/client-go/pkg/version
  dir=$(metrics_server_dir)
  tmp=$(scratch)
  say "metrics-server $METRICS_SERVER_VERSION: go install (about 2 min cold on 2 cores, measured alone)"
  (cd "$tmp" && GOBIN="$tmp/out" go install \
    -ldflags "-s -w -X $p.gitVersion=$METRICS_SERVER_VERSION -X $p.gitCommit=$METRICS_SERVER_VERSION" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" 2>&1 | go_progress)
  v=$("$tmp/out/metrics-server" --version 2>&1 | head -1)
  [[ $v == "$METRICS_SERVER_VERSION" ]] ||
    die "metrics-server reports '$v', versions.env says $METRICS_SERVER_VERSION"
  publish "$tmp/out" "$dir"
  detail "metrics-server $v in $(elapsed $t)"
}

install_keda() {
  need go "to build keda"
  ensure_built keda keda_built build_keda "${KEDA_JOB:-}" "$(keda_dir)"
  ensure_built metrics-server metrics_server_built build_metrics_server "${METRICS_SERVER_JOB:-}"
  link "$(keda_dir)/keda" keda
  link "$(keda_dir)/keda-adapter" keda-adapter
  link "$(metrics_server_dir)/metrics-server" metrics-server
}

versitygw_dir() { echo "$CACHE_ROOT/versitygw/$VERSITYGW_VERSION"; }
versitygw_built() { [[ -x $(versitygw_dir)/versitygw ]]; }
# The tests' S3-compatible store (posix backend). Background job like containerd.
build_versitygw() {
  local dir t=$SECONDS tmp
  dir=$(versitygw_dir)
  tmp=$(scratch)
  say "versitygw $VERSITYGW_VERSION: go install (about 2 min cold on 2 cores)"
  (cd "$tmp" && GOBIN="$tmp/out" go install \
    -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" 2>&1 | go_progress)
  # (its --version says only "git" when built with go install: nothing to check against)
  [[ -x $tmp/out/versitygw ]] || die "versitygw did not build"
  publish "$tmp/out" "$dir"
  detail "versitygw $VERSITYGW_VERSION ($(du -m "$dir/versitygw" | cut -f1) MiB) in $(elapsed $t)"
}

install_s3() {
  need go "to build versitygw"
  ensure_built versitygw versitygw_built build_versitygw "${VERSITYGW_JOB:-}"
  link "$(versitygw_dir)/versitygw" versitygw
}

traefik_dir() { echo "$CACHE_ROOT/traefik/$TRAEFIK_VERSION"; }
traefik_built() { [[ -x $(traefik_dir)/traefik ]]; }
# The real node's Gateway API data plane (devstack/gateway.py). Its go.mod has replace
# directives (forks of three modules), so `go install pkg@version` refuses it: build in a copy
# of the module, version stamped as its Makefile does. Background job like keda.
build_traefik() {
  local dir t=$SECONDS tmp v p=github.com/traefik/traefik/v3/pkg/version
  dir=$(traefik_dir)
  tmp=$(scratch)
  say "traefik $TRAEFIK_VERSION: go build of cmd/traefik (about 17 min cold on 2 cores, measured)"
  go_module_copy "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" "$tmp/src"
  GOFLAGS="$GOFLAGS -mod=mod" fetch_then_yield "$tmp/src" ./cmd/traefik
  local ld="-s -w -X $p.Version=$TRAEFIK_VERSION -X $p.Codename=modelops-rig -X $p.BuildDate=1970-01-01T00:00:00Z"
  (cd "$tmp/src" && GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "$ld" \
    -o "$tmp/out/traefik" ./cmd/traefik 2>&1 | go_progress)
  v=$("$tmp/out/traefik" version | awk '/^Version:/ { print $2 }')
  [[ $v == "$TRAEFIK_VERSION" ]] || die "traefik reports '$v', versions.env says $TRAEFIK_VERSION"
  publish "$tmp/out" "$dir"
  detail "traefik $v ($(du -m "$dir/traefik" | cut -f1) MiB) in $(elapsed $t)"
}

install_gateway() {
  need go "to build traefik"
  ensure_built traefik traefik_built build_traefik "${TRAEFIK_JOB:-}" "$(traefik_dir)"
  link "$(traefik_dir)/traefik" traefik
  # upstream's RBAC for its Gateway API provider (devstack/gateway.py binds it to its user)
  module_files gateway-rbac github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" \
    docs/content/reference/dynamic-configuration "$ROOT/.cache/traefik" kubernetes-gateway-rbac.yml
}

# fetch_then_yield SRC PKG...: download the modules that PKGs (of the module copy SRC) need,
# then, in a detached build, lower the rest of it to nice 19, so it takes only the CPU the other
# builds and the tests leave: at nice 0 beside the other builds, keda and traefik ended no sooner
# than the foreground's Kubernetes build (45 min, cold, 2026-12-07); at nice 19 from the start, a
# download's TLS handshake timed out, starved, while a compile only waits its turn.
fetch_then_yield() {
  local src=$1
  shift
  (cd "$src" && go list -deps "$@" 2>&1 >/dev/null | go_progress)
  if [[ -n ${DETACHED_GROUP:-} ]]; then renice -n 19 -g "$DETACHED_GROUP" >/dev/null; fi
}

# Wait for (or run) one background build: ensure_built NAME BUILT_CHECK BUILD_FN JOB_PID
# [ENTRY]. With ENTRY (a detachable build, see start_build), a build that holds ENTRY.lock is
# left to run under MODELOPS_TOOLS_DETACH=1, else waited for.
ensure_built() {
  local name=$1 built=$2 build=$3 job=${4:-} entry=${5:-}
  "$built" && return 0
  if [[ -n $job ]]; then
    detail "waiting for the $name build (started in the background)"
    wait "$job" || die "$name build failed"
  elif [[ -n $entry ]] && ! flock -n "$entry.lock" true; then
    if [[ ${MODELOPS_TOOLS_DETACH:-} == 1 ]]; then
      detail "$name: still building in the background (log: $entry.log)"
      STILL_BUILDING+=("$name")
      return 0
    fi
    detail "waiting for the $name build in the background (log: $entry.log)"
    flock "$entry.lock" true
    "$built" || die "the $name build failed: see $entry.log"
  else
    "$build"
  fi
  WORK_DONE=1
}

# start_build NAME ENTRY BUILD_FN JOB_VAR: run BUILD_FN in the background, holding ENTRY.lock
# until it ends (JOB_VAR gets its pid), unless a detached build of an earlier run holds the
# lock already. With MODELOPS_TOOLS_DETACH=1 the build is detached: its own process group (so
# it outlives this run; its compile at nice 19, fetch_then_yield), its output in ENTRY.log,
# JOB_VAR empty.
start_build() {
  local name=$1 entry=$2 build=$3
  mkdir -p "$(dirname "$entry")"
  exec 8>"$entry.lock"
  if flock -n 8; then
    if [[ ${MODELOPS_TOOLS_DETACH:-} == 1 ]]; then
      set -m
      (
        SCRATCH_OWNER=$BASHPID DETACHED_GROUP=$BASHPID # set -m: the job's own process group
        trap drop_scratch EXIT
        "$build"
      ) >"$entry.log" 2>&1 &
      set +m
    else
      "$build" > >(sed -u "s/^/[$name] /") 2>&1 &
      printf -v "$4" %s "$!"
    fi
  fi
  exec 8>&- # the build's copy of the descriptor holds the lock
}

install_node() {
  need go "to build containerd and coredns"
  need gcc "to compile the pause binary"
  ensure_built containerd containerd_built build_containerd "${CONTAINERD_JOB:-}"
  ensure_built coredns coredns_built build_coredns "${COREDNS_JOB:-}"
  local b
  for b in "${CONTAINERD_BINS[@]}"; do link "$(containerd_dir)/$b" "$b"; done
  link "$(coredns_dir)/coredns" coredns

  # The pod sandbox: upstream's pause.c from the module zip, static (the rig wraps it in
  # an OCI image archive and imports it into containerd; no registry is involved).
  local dir=$CACHE_ROOT/pause/v$KUBERNETES_VERSION
  if [[ ! -x $dir/pause ]]; then
    local t=$SECONDS tmp mod
    tmp=$(scratch)
    say "pause: gcc -static from k8s.io/kubernetes@v$KUBERNETES_VERSION build/pause/linux/pause.c"
    mod=$(go_module Dir "k8s.io/kubernetes@v$KUBERNETES_VERSION")
    mkdir -p "$tmp/out"
    gcc -Os -static -Wall -Werror -DVERSION="v$KUBERNETES_VERSION-modelops" \
      -o "$tmp/out/pause" "$mod/build/pause/linux/pause.c"
    strip "$tmp/out/pause"
    publish "$tmp/out" "$dir"
    detail "$("$dir/pause" -v 2>&1 | head -1) ($(du -k "$dir/pause" | cut -f1) KiB) in $(elapsed $t)"
    WORK_DONE=1
  fi
  link "$dir/pause" pause
}

# The foreground builds (kwok, kube) first, the steps that wait for a background build
# last: `promop` second waited 38 minutes for its builds while kube, the largest foreground
# build, had not started (cold run, 2026-12-05).
ALL=(debian layer helm3 crds kwok kube node s3 promop gateway keda)
STEPS=("${@:-${ALL[@]}}")
for s in "${STEPS[@]}"; do
  [[ " ${ALL[*]} " == *" $s "* ]] || die "unknown step '$s' (steps: ${ALL[*]})"
done
say "tools: cache $CACHE_ROOT, links in .cache/bin"
# containerd and coredns need nothing the other steps make: build them beside those (Go
# downloads and the linker leave the second core idle much of the time).
if [[ " ${STEPS[*]} " == *" node "* ]] && command -v go >/dev/null; then
  if ! containerd_built; then
    build_containerd > >(sed -u 's/^/[containerd] /') 2>&1 &
    CONTAINERD_JOB=$!
  fi
  if ! coredns_built; then
    build_coredns > >(sed -u 's/^/[coredns] /') 2>&1 &
    COREDNS_JOB=$!
  fi
fi
if [[ " ${STEPS[*]} " == *" promop "* ]] && command -v go >/dev/null && ! promop_built; then
  build_promop > >(sed -u 's/^/[prometheus-operator] /') 2>&1 &
  PROMOP_JOB=$!
fi
if [[ " ${STEPS[*]} " == *" promop "* ]] && command -v go >/dev/null && ! promserver_built; then
  build_promserver > >(sed -u 's/^/[prometheus-server] /') 2>&1 &
  PROMSERVER_JOB=$!
fi
if [[ " ${STEPS[*]} " == *" promop "* ]] && command -v go >/dev/null && ! ksm_built; then
  build_ksm > >(sed -u 's/^/[kube-state-metrics] /') 2>&1 &
  KSM_JOB=$!
fi
if [[ " ${STEPS[*]} " == *" keda "* ]] && command -v go >/dev/null && ! keda_built; then
  start_build keda "$(keda_dir)" build_keda KEDA_JOB
fi
if [[ " ${STEPS[*]} " == *" keda "* ]] && command -v go >/dev/null && ! metrics_server_built; then
  build_metrics_server > >(sed -u 's/^/[metrics-server] /') 2>&1 &
  METRICS_SERVER_JOB=$!
fi
if [[ " ${STEPS[*]} " == *" s3 "* ]] && command -v go >/dev/null && ! versitygw_built; then
  build_versitygw > >(sed -u 's/^/[versitygw] /') 2>&1 &
  VERSITYGW_JOB=$!
fi
if [[ " ${STEPS[*]} " == *" gateway "* ]] && command -v go >/dev/null && ! traefik_built; then
  start_build traefik "$(traefik_dir)" build_traefik TRAEFIK_JOB
fi
for s in "${STEPS[@]}"; do "install_$s"; done

pending=${STILL_BUILDING[*]:+; still building at nice 19: ${STILL_BUILDING[*]} (what needs them waits)}
if ((WORK_DONE)); then
  say "tools ready in $(elapsed $START): $(cd "$BIN" && ls | tr '\n' ' ')$pending"
else
  say "all tools present${pending:-, nothing to do}"
fi
