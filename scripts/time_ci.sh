#!/usr/bin/env bash
# Time CI (.ci/run = the README's install + test commands) on a fresh clone of HEAD, as CI does, and keep the log's
# summary as evidence: results/ci/ci-<commit>.txt (`make evidence-ci`). Needs a clean tree (what is timed is HEAD).
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short HEAD)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet . "$work/repro"
start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
set +e
(cd "$work/repro" && .ci/run) > "$work/ci.log" 2>&1
status=$?
set -e
seconds=$(( $(date +%s) - start ))
mkdir -p results/ci
out="results/ci/ci-${commit}.txt"
{
  echo "# .ci/run on a fresh clone of ${commit}, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
  echo "# exit status ${status}; wall ${seconds} s; load average before: ${load_before}; after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# last lines of the log:"
  tail -n 15 "$work/ci.log"
} > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
exit $status
