#!/usr/bin/env bash
# Print the path of a uv to build .venv with (make venv).
#
#   hack/bootstrap-uv.sh DIR     (UV_VERSION pins the version to bootstrap)
#
# uv on PATH is used as it is. Otherwise uv is installed into DIR, a virtual environment
# of its own made with python3 -m venv: pip never touches the system Python, so a PEP 668
# ("externally-managed-environment") Python works, and nothing has to land on PATH the way
# a `pip install --user` would. Every failure is one line that names the fix.
set -euo pipefail

dir=${1:?usage: hack/bootstrap-uv.sh DIR}
version=${UV_VERSION:?UV_VERSION is not set}
install_uv="or install uv yourself: https://docs.astral.sh/uv/getting-started/installation/"

die() {
  printf 'bootstrap-uv: %s\n' "$*" >&2
  exit 1
}

if command -v uv >/dev/null 2>&1; then
  command -v uv
  exit 0
fi
if [[ -x $dir/bin/uv ]]; then
  echo "$dir/bin/uv"
  exit 0
fi

python=$(command -v python3 2>/dev/null) || die "uv is not on PATH and there is no python3 to install it with: install Python 3, $install_uv"
echo ">> uv not on PATH: installing uv $version into $dir with $python -m venv" >&2
if ! log=$("$python" -m venv "$dir" 2>&1); then
  rm -rf "$dir"
  die "$python cannot create a virtual environment (${log##*$'\n'}): on Debian/Ubuntu run 'sudo apt install python3-venv', $install_uv"
fi
if ! log=$("$dir/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$version" 2>&1); then
  rm -rf "$dir"
  die "pip could not install uv==$version into $dir (${log##*$'\n'}): check the network or a pip proxy setting, $install_uv"
fi
[[ -x $dir/bin/uv ]] || die "uv==$version installed no $dir/bin/uv: $install_uv"
echo "$dir/bin/uv"
