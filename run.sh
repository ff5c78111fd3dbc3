#!/usr/bin/env bash
# The default pipeline on CPU defaults: generate -> train -> evaluate in-order -> evaluate out-of-order.
#   ./run.sh          run it (stages whose outputs already exist are skipped)
#   ./run.sh test     the test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

case "${1:-default}" in
  test)
    shift
    exec "$PY" -m pytest "$@"
    ;;
  default)
    [ "$#" -gt 0 ] && shift
    tag=stepbystep_random50
    if [ -f "data/$tag/meta.json" ]; then echo "data/$tag exists: skipping generation"; else "$PY" 01_generate_data.py "$@"; fi
    ;;
  *)
    echo "usage: ./run.sh [default|test] [hydra overrides...]" >&2
    exit 2
    ;;
esac
