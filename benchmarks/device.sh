#!/usr/bin/env bash
# The ablation engine on one accelerator (issue 15): evaluations/s of the engine and of the naive loop for the
# thesis CNN and a CIFAR VGG-16-BN, random weights and data; under 5 minutes on one GPU.
#   benchmarks/device.sh                      # on CUDA
#   DEVICE=cpu QUICK=1 benchmarks/device.sh   # tiny sizes: checks the script without a GPU
# PYTHON selects the interpreter (default: python3); src/ of this checkout is put on PYTHONPATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$here/../src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cd "$here"
exec timeout 290 "${PYTHON:-python3}" device_bench.py
