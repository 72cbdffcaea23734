#!/usr/bin/env bash
# The GPU check of issue 16 in one command (docs/GPU.md): unpack DALI from the carried
# .gpuwheels parts, install dalinorm, then data, bench, parity, decoder parity, GPU memory,
# the example trainer, a 2-process run, the cuda tests; one JSON + one markdown report in
# --report (default $OUT, else ./gpu_report). Every step has its own time limit inside
# --budget (450 s); a failing step is recorded and the next one runs.
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run        # without a GPU: CPU twins, tiny data
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh --dry-run --report /tmp/r
set -u
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
