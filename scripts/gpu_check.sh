#!/usr/bin/env bash
# The GPU check: everything the project measures on a GPU, in one command, in under 7 minutes.
#   bash scripts/gpu_check.sh OUTDIR              on a machine with CUDA
#   bash scripts/gpu_check.sh --dry-run OUTDIR    every stage on the CPU with tiny sizes (tests/test_gpu_check.py)
# OUTDIR gets summary.json, summary.txt, gpu_check.log and cuda_tests.log; the summary table is printed last.
# Stages, options and what each measures: benchmarks/gpu_check.py (--help).
#
# Runs from a plain copy of the repository, nothing installed and no network: the repository root goes on
# PYTHONPATH, and the stages need only torch, lightning, torchmetrics, scikit-learn, numpy, pandas and
# pytest — not hydra-core or omegaconf (the test modules that need them skip themselves).
# Python: $PYTHON if set, else python3, else python.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
    done
fi
if [ -z "$PY" ]; then
    echo "gpu_check: no python3 or python on PATH (set PYTHON=...)" >&2
    exit 2
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" "$ROOT/benchmarks/gpu_check.py" "$@"
