#!/usr/bin/env bash
# Installs fusionrec and everything it needs into the current Python (>= 3.11).
# torch is installed FIRST and pinned: 2.13.0 is the local CPU wheel; any other
# spec would pull gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet "torch==2.13.0"
"$PY" -m pip install --quiet -e ".[test,track,dist,finetune]"   # track: tensorboard (tests read its events back); dist: Ray
"$PY" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
