#!/usr/bin/env bash
# Create (or refresh) a CPU-only RecBole venv outside the repo. Idempotent: re-running only
# re-checks the pins. Usage: bash benchmarks/peers/recbole_setup.sh
# Run RecBole with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (torch>=2.6 defaults torch.load to
# weights_only=True, which RecBole's checkpoint loading predates).
set -euo pipefail

VENV="${RECBOLE_VENV:-/work/peers/recbole-venv}"
RECBOLE_VERSION="${RECBOLE_VERSION:-1.2.1}"

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet)

# CPU torch: the local 2.13.0+cpu wheel (found via PIP_FIND_LINKS); the PyPI 2.13.0 wheel
# would pull CUDA libraries, so fail rather than fall back to it.
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)' 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
  "$VENV/bin/python" -c 'import torch; assert torch.version.cuda is None, "CUDA torch installed"'
fi

# RecBole's own pins (colorlog/colorama) plus the pins its 2023 code needs: numpy<2
# (np.float etc.), pandas<2.2. The usual setuptools<70 pin is left out: it was for old
# torch.utils.tensorboard (setuptools.distutils); nothing here imports setuptools now and
# torch 2.13 declares setuptools>=77.0.3, so the pin only makes a pip conflict. ray is a hard dependency of
# the wheel but is only imported by recbole.quick_start (hyper-parameter tuning), which the
# benchmark does not use, so RecBole goes in with --no-deps and ray/hyperopt are skipped.
"${PIP[@]}" "numpy<2" "pandas<2.2" "scipy>=1.6" "scikit-learn>=0.23.2" \
  "tqdm>=4.48.2" "colorlog==4.7.2" "colorama==0.4.4" "pyyaml>=5.1" "tensorboard>=2.5" \
  "tabulate>=0.8.10" "plotly>=4.0" "texttable>=0.9" "psutil>=5.9"
"${PIP[@]}" --no-deps "thop>=0.1.1.post2207130030" "recbole==$RECBOLE_VERSION"

TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$VENV/bin/python" -c '
import numpy, pandas, recbole, torch
from recbole.config import Config  # noqa: F401
from recbole.trainer import Trainer  # noqa: F401
print(f"recbole {recbole.__version__}, torch {torch.__version__}, numpy {numpy.__version__}, "
      f"pandas {pandas.__version__}")'
echo "RecBole venv ready: $VENV"
