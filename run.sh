#!/usr/bin/env bash
# Whole pipelines from the shell. Extra arguments are Hydra overrides (and, for suites, experiment names).
#   ./run.sh [default] [key=value ...]   the default pipeline on CPU defaults: generate -> train -> evaluate in-order
#                                     -> evaluate out-of-order (finished stages are skipped on a rerun); each key
#                                     goes to the stages that have it
#   ./run.sh paper [EXPERIMENT ...]   every finding of the study (config/sweep/experiment/), then reports/paper/
#                  [profile=full] [launcher=joblib|submitit_local|slurm|ray] [seed=0,1,2] [key=value ...]
#                  [status=true]    (what the workdir holds of the plan; runs nothing)
#   ./run.sh EXPERIMENT [key=value ...]   one experiment (config/sweep/experiment/EXPERIMENT.yaml), its own report
#   ./run.sh tiny                     a seconds-long sweep through every stage (the CI smoke test)
#   ./run.sh test [PYTEST ARGS]       the test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

[ "$#" -gt 0 ] && [[ "$1" != *=* ]] || set -- default "$@"  # ./run.sh key=value: the default pipeline
mode=$1
shift
case "$mode" in
  test)
    exec "$PY" -m pytest "$@"
    ;;
  *)
    if [ -f "config/sweep/suite/$mode.yaml" ] || [ -f "config/sweep/experiment/$mode.yaml" ]; then
      exec "$PY" -m sweep "$mode" "$@"
    fi
    echo "usage: ./run.sh [test|$(ls config/sweep/suite | sed 's/.yaml//' | paste -sd'|')|EXPERIMENT] [args...]" >&2
    exit 2
    ;;
esac
