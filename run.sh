#!/usr/bin/env bash
# Whole pipelines from the shell. Extra arguments are Hydra overrides (and, for suites, experiment names).
#   ./run.sh                          the default pipeline on CPU defaults: generate -> train -> evaluate in-order
#                                     -> evaluate out-of-order (finished stages are skipped on a rerun)
#   ./run.sh paper [EXPERIMENT ...]   every finding of the study (config/sweep/experiment/), then reports/paper/
#                  [profile=full] [launcher=joblib|submitit_local|slurm|ray] [seed=0,1,2] [key=value ...]
#   ./run.sh EXPERIMENT [key=value ...]   one experiment (config/sweep/experiment/EXPERIMENT.yaml), its own report
#   ./run.sh tiny                     a seconds-long sweep through every stage (the CI smoke test)
#   ./run.sh test [PYTEST ARGS]       the test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

mode=${1:-default}
[ "$#" -gt 0 ] && shift
case "$mode" in
  test)
    exec "$PY" -m pytest "$@"
    ;;
  default)
    "$PY" 01_generate_data.py skip_complete=true "$@"
    "$PY" 02_train.py skip_complete=true "$@"
    "$PY" 03_evaluate_i.py skip_complete=true "$@"
    "$PY" 03_evaluate_o.py skip_complete=true "$@"
    echo "done: data/stepbystep_random50, ckpts/stepbystep_random50, results/stepbystep_random50 (inorder.csv, outorder.csv, summary.json)"
    ;;
  *)
    if [ -f "config/sweep/suite/$mode.yaml" ] || [ -f "config/sweep/experiment/$mode.yaml" ]; then
      exec "$PY" -m sweep "$mode" "$@"
    fi
    echo "usage: ./run.sh [default|test|$(ls config/sweep/suite | sed 's/.yaml//' | paste -sd'|')|EXPERIMENT] [args...]" >&2
    exit 2
    ;;
esac
