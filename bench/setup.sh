#!/usr/bin/env bash
# Install what `make bench` needs, idempotently: wrk (Debian package) and one venv per peer
# under .cache/bench/ from the == pins in bench/requirements-*.txt. The peers pin versions that
# conflict with pyproject.toml, so they never share the project's .venv; but scikit-learn,
# joblib and numpy must be the project's versions, or model.joblib may not load (or answer
# differently): this script refuses to go on when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
CACHE_DIR="${CACHE_DIR:-.cache/bench}"
UV="${UV:-uv}" # make bench-setup passes the uv that `make venv` uses (hack/bootstrap-uv.sh)

if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo ">> installing wrk (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is missing: install the Debian package (apt-get install wrk)" >&2
    exit 1
  fi
fi

pin() { # pin NAME FILE -> the == version of NAME in FILE (pyproject.toml or requirements)
  grep -ioE "^[[:space:]\"]*$1==[^\",[:space:]]+" "$2" | head -1 | sed 's/.*==//'
}
for pkg in scikit-learn joblib numpy; do
  want=$(pin "$pkg" pyproject.toml)
  [[ -n "$want" ]] || { echo "pyproject.toml pins no $pkg==: cannot check the peers" >&2; exit 1; }
  for req in bench/requirements-mlserver.txt bench/requirements-kserve.txt; do
    got=$(pin "$pkg" "$req")
    if [[ "$got" != "$want" ]]; then
      echo "$req pins $pkg==$got but pyproject.toml pins $pkg==$want: the peers must load" \
        "model.joblib with the same versions; update $req" >&2
      exit 1
    fi
  done
done

for peer in mlserver kserve report; do
  req="bench/requirements-$peer.txt"
  venv="$CACHE_DIR/$peer-venv"
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [[ -f "$venv/.installed" && "$(cat "$venv/.installed")" == "$sum" ]]; then
    continue
  fi
  echo ">> creating $venv from $req"
  "$UV" venv --quiet --allow-existing --python "$PYTHON_VERSION" "$venv"
  "$UV" pip install --quiet --python "$venv/bin/python" -r "$req"
  echo "$sum" >"$venv/.installed"
done
echo ">> bench tools ready: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), venvs in $CACHE_DIR"
