#!/usr/bin/env bash
# Fail when a committed rendered tree is not what `calicc build --frozen` produces.
#
# Usage: check-rendered.sh [CLUSTER_FILE...]
#   With no arguments, every cluster.yaml tracked by git (or untracked but not ignored) is
#   checked. Each is built in memory with --frozen (the lock file must not change: blocks never
#   move without a reviewed commit) and --check (nothing is written; exit 1 if any file of
#   rendered/ beside it differs). Set CALICC to the calicc executable if it is not on PATH.
set -euo pipefail

calicc=${CALICC:-calicc}
if (($# == 0)); then
  mapfile -t clusters < <(git ls-files --cached --others --exclude-standard -- '*cluster.yaml' 'cluster.yaml' | sort -u)
else
  clusters=("$@")
fi
if ((${#clusters[@]} == 0)); then
  echo "check-rendered: no cluster.yaml found" >&2
  exit 1
fi

status=0
for cluster in "${clusters[@]}"; do
  if out=$("$calicc" build --frozen --check "$cluster" 2>&1); then
    echo "ok: $cluster: rendered tree is current"
  else
    status=1
    echo "$out" >&2
    echo "FAIL: $cluster: the committed rendered tree is not what the cluster file compiles to;" \
      "run \`calicc build $cluster\` and commit cluster.lock.yaml and rendered/" >&2
  fi
done
exit "$status"
