#!/usr/bin/env bash
# Build the service and operator images (`make images`) from the unmodified Dockerfiles with
# a real Docker engine (BuildKit), reusing an image already built from the same inputs.
#
#   hack/images.sh [service|operator]...     (default: both)
#
# Two modes, chosen by the caller, never guessed:
#   default            what a user runs: base images are pulled as `docker build` always
#                      does; the operator's helm is the official release for the target
#                      architecture, checked against its published sha256.
#   MODELOPS_OFFLINE=1 CI on a machine where no container registry answers (.ci/run):
#                      a missing base image is built here as a STAND-IN of the same name
#                      from Debian packages (mmdebstrap, the mirror of this machine's apt
#                      configuration), and helm is the release build hack/install-tools.sh
#                      unpacked (linux/amd64) or is built on the host with `go install` from
#                      the Go module proxy for another target architecture (HELM_SOURCE=local).
#                      Nothing is ever pulled in this mode.
#
# Each image is tagged REPO:IMAGE_TAG and REPO:IMAGE_TAG-inputs-<hash of every build input>
# (hack/image_inputs.py); when the second tag exists the build is skipped.
# pip inside the build trusts CA_BUNDLE (default: the host pip's PIP_CERT) through a BuildKit
# secret, which never lands in a layer.
#
# Environment: DOCKER (a CLI whose `build` runs BuildKit; default: `docker` when it has buildx,
# else the engine package's own CLI), PLATFORM (e.g. linux/arm64; default the engine's),
# IMAGE_TAG, SERVICE_REPO, OPERATOR_REPO, CA_BUNDLE, MODELOPS_CACHE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=versions.env
source hack/versions.env

OFFLINE=${MODELOPS_OFFLINE:-0}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
SERVICE_REPO=${SERVICE_REPO:-model-service}
OPERATOR_REPO=${OPERATOR_REPO:-modelops-operator}
CA_BUNDLE=${CA_BUNDLE-${PIP_CERT:-}}
PLATFORM=${PLATFORM:-}
CACHE_ROOT=${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops-bundle}
STANDIN_LABEL=io.modelops.stand-in
export DOCKER_BUILDKIT=1

say() { printf '>> %s\n' "$*"; }
die() {
  printf 'images: %s\n' "$*" >&2
  exit 1
}

# A CLI whose `docker build` runs BuildKit (secrets, TARGETARCH). A newer CLI without the
# buildx plugin only has the legacy builder; the engine package's own CLI drives the
# engine's built-in BuildKit directly.
pick_docker() {
  if [[ -n ${DOCKER:-} ]]; then
    echo "$DOCKER"
  elif docker buildx version >/dev/null 2>&1; then
    echo docker
  else
    local own
    own=$(dirname "$(command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd)")/../bin/docker
    [[ -x $own ]] || die "docker has no buildx plugin and no engine CLI is installed: install buildx"
    (cd "$(dirname "$own")" && echo "$PWD/docker")
  fi
}
DOCKER=$(pick_docker)
"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers (make engine starts one)"

# Target platform: PLATFORM, else the engine's own.
os_arch() {
  local p=${PLATFORM:-$("$DOCKER" version --format '{{.Server.Os}}/{{.Server.Arch}}')}
  echo "${p%%/*} $(echo "${p#*/}" | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
}
read -r TARGET_OS TARGET_ARCH < <(os_arch)

image_id() { "$DOCKER" image inspect --format '{{.Id}}' "$1" 2>/dev/null; }

# --- base images --------------------------------------------------------------------------
# The stand-in for python:<minor>-slim-<suite>: Debian <suite>'s own python3 (bookworm: 3.11)
# on a minbase root file system, with the /usr/local/bin links the official image has.
build_standin() {
  local ref=$1 minor suite tmp archive security codename
  [[ $ref =~ ^python:([0-9]+\.[0-9]+)-slim-([a-z]+)$ ]] || die "no stand-in recipe for $ref"
  minor=${BASH_REMATCH[1]} suite=${BASH_REMATCH[2]}
  command -v mmdebstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null
  # The mirrors of this machine's apt configuration (never a name written here).
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  archive=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk -v c="$codename" '$2 == c {print $1; exit}')
  security=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 ~ /-security$/ {print $1; exit}')
  [[ -n $archive ]] || die "no Debian archive in this machine's apt configuration"
  say "STAND-IN: $ref is not in the engine and MODELOPS_OFFLINE=1: building a stand-in of that"
  say "STAND-IN: name from Debian $suite packages (python3 $minor); it is NOT the official image"
  tmp=$(mktemp -d)
  {
    echo "deb $archive $suite main"
    echo "deb $archive $suite-updates main"
    [[ -z $security ]] || echo "deb $security $suite-security main"
  } | mmdebstrap --quiet --variant=minbase --mode=root \
    --include=python3,python3-venv,ca-certificates,passwd,netbase \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='ln -s /usr/bin/python3 "$1/usr/local/bin/python3"' \
    --customize-hook='ln -s /usr/bin/python3 "$1/usr/local/bin/python"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$tmp/rootfs.tar" -
  "$DOCKER" import \
    --change "LABEL $STANDIN_LABEL=\"Debian $suite python3, built by hack/images.sh; not $ref\"" \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tmp/rootfs.tar" "$ref" >/dev/null
  rm -rf "$tmp"
  local got
  got=$("$DOCKER" run --rm "$ref" python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [[ $got == "$minor" ]] || die "stand-in $ref runs Python $got, not $minor"
  say "STAND-IN: $ref built ($(size_of "$ref"), $("$DOCKER" run --rm "$ref" python -V 2>&1))"
}

# Every base image a Dockerfile names (its ARG *_IMAGE defaults).
bases_of() { sed -n 's/^ARG [A-Z_]*_IMAGE=\(.*\)$/\1/p' "$1"; }

ensure_base() {
  local ref=$1
  if image_id "$ref" >/dev/null; then
    if "$DOCKER" image inspect --format "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$ref" | grep -q .; then
      say "base $ref: a STAND-IN built from Debian packages (docker rmi it to use the real one)"
    fi
  elif [[ $OFFLINE == 1 ]]; then
    build_standin "$ref"
  else # what docker build would do; pulled first so the inputs hash names the image ID
    "$DOCKER" pull --quiet ${PLATFORM:+--platform "$PLATFORM"} "$ref" >/dev/null
  fi
}

# --- helm for the operator image (offline mode) --------------------------------------------
# For linux/amd64, the release build of helm that hack/install-tools.sh unpacked from the pinned
# kubectl layer (the helm the tests run; its version checked there), in no time; the go install
# it replaces took minutes of a cold run's test phase. Another platform's is built from the helm
# Go module into the shared versioned cache. Either is copied into the build context, where
# operator/Dockerfile's helm-local stage reads it.
local_helm() {
  local dir=$CACHE_ROOT/image-helm/$HELM_VERSION/$TARGET_OS-$TARGET_ARCH
  local layer=$CACHE_ROOT/kubectl-layer/$KUBECTL_LAYER_VERSION/helm
  local dest=.cache/images/helm-$HELM_VERSION-$TARGET_OS-$TARGET_ARCH
  if [[ $TARGET_OS/$TARGET_ARCH == linux/amd64 ]]; then
    [[ -x $layer ]] || die "no helm at $layer: run 'make tools' first"
    dir=$(dirname "$layer")
  elif [[ ! -x $dir/helm ]]; then
    command -v go >/dev/null || die "go is needed to build helm for the image offline"
    local t=$SECONDS tmp
    tmp=$(mktemp -d)
    say "helm $HELM_VERSION for $TARGET_OS/$TARGET_ARCH: go install from the Go module proxy (minutes cold)"
    # GOPATH only chooses where the binary lands (bin/ or bin/<os>_<arch>/ when cross-compiled);
    # GOFLAGS are hack/install-tools.sh's, so the standard library's packages come from its cache.
    GOPATH=$tmp GOMODCACHE=$(go env GOMODCACHE) GOOS=$TARGET_OS GOARCH=$TARGET_ARCH CGO_ENABLED=0 \
      GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -trimpath -gcflags=all=-dwarf=false" go install \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" 2>&1 |
      awk '/^go: downloading / { if (n++ % 40 == 0) printf "   ... downloading Go modules (%d)\n", n; next } { print }'
    mkdir -p "$dir"
    mv "$(find "$tmp/bin" -name helm -type f)" "$dir/helm"
    chmod -R u+w "$tmp" && rm -rf "$tmp"
    say "helm $HELM_VERSION built in $((SECONDS - t))s"
  fi
  mkdir -p .cache/images
  cmp -s "$dir/helm" "$dest" || cp "$dir/helm" "$dest"
}

size_of() {
  "$DOCKER" image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'
}

# build NAME DOCKERFILE REPO [--build-arg ...]
build() {
  local name=$1 dockerfile=$2 repo=$3
  shift 3
  local base args=("$@") extras=() hash tagged t=$SECONDS
  [[ -z $PLATFORM ]] || args+=(--platform "$PLATFORM")
  for base in $(bases_of "$dockerfile"); do
    ensure_base "$base"
    extras+=("base=$base@$(image_id "$base")")
  done
  hash=$(python3 hack/image_inputs.py "$dockerfile" "${extras[@]}" "platform=$TARGET_OS/$TARGET_ARCH" "${args[@]}")
  tagged=$repo:$IMAGE_TAG-inputs-${hash:0:16}
  if image_id "$tagged" >/dev/null; then
    "$DOCKER" tag "$tagged" "$repo:$IMAGE_TAG"
    say "$name image $repo:$IMAGE_TAG: reused $tagged (same inputs), $(size_of "$tagged")"
    return 0
  fi
  if [[ -n $CA_BUNDLE && -f $CA_BUNDLE ]]; then
    args+=(--secret "id=ca-bundle,src=$CA_BUNDLE")
  fi
  say "$name image $repo:$IMAGE_TAG: building ($dockerfile, $TARGET_OS/$TARGET_ARCH)"
  "$DOCKER" build --progress=plain --file "$dockerfile" --tag "$repo:$IMAGE_TAG" --tag "$tagged" "${args[@]}" . 2>&1 |
    grep -E '^#[0-9]+ (\[|DONE|ERROR|CACHED)|ERROR|error' || true
  image_id "$tagged" >/dev/null || die "$name image build failed: $DOCKER build --file $dockerfile ."
  # Older inputs tags of this repo are stale now.
  "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "$repo" |
    grep -F ":$IMAGE_TAG-inputs-" | grep -vxF "$tagged" | xargs -r "$DOCKER" rmi >/dev/null || true
  say "$name image $repo:$IMAGE_TAG: built in $((SECONDS - t))s, $(size_of "$tagged")"
}

if (($#)); then WHICH=("$@"); else WHICH=(service operator); fi
for w in "${WHICH[@]}"; do
  case $w in
    service)
      [[ -f models/wine/1/model.json ]] || die "models/ is empty: run 'make models' first"
      build service service/Dockerfile "$SERVICE_REPO"
      ;;
    operator)
      helm_args=(--build-arg "HELM_VERSION=$HELM_VERSION")
      if [[ $OFFLINE == 1 ]]; then
        local_helm
        helm_args+=(--build-arg HELM_SOURCE=local)
      fi
      build operator operator/Dockerfile "$OPERATOR_REPO" "${helm_args[@]}"
      ;;
    *) die "unknown image '$w' (service, operator)" ;;
  esac
done
