#!/usr/bin/env bash
# Build a scratch copy of the service with the proposals in bench/proposals/*.patch applied,
# under .cache/bench/proposal/, for `make bench-proposal` (run.py --variant ... PYTHONPATH=...).
# The work tree is never touched: the copy comes from HEAD through git archive.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${CACHE_DIR:-.cache/bench}/proposal"
rm -rf "$dest"
mkdir -p "$dest"
git archive HEAD service | tar -x -C "$dest"
for patch in bench/proposals/*.patch; do
  git apply --directory="$dest" --include="$dest/service/modelops_service/*" "$patch" ||
    { echo "$patch does not apply to HEAD's service/ any more: refresh it" >&2; exit 1; }
done
echo ">> proposal copy in $dest/service (PYTHONPATH for run.py --variant)"
