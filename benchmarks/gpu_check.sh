#!/usr/bin/env bash
# The one script to run when a session has a GPU: GPU-vs-CPU tests, then the quick benchmark
# suite on the GPU, then its table. Meant to finish in under 8 minutes on one H100/H200.
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT if set, else ./gpu_check)
# Needs jax with CUDA (pip install 'jax[cuda12]') and ../shared/data for the real-data cases.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check}}"
mkdir -p "$OUT_DIR"
START=$SECONDS

python - <<'EOF'
import jax
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
EOF

# The default suite pins JAX_PLATFORMS=cpu (tests/conftest.py); this file wants the GPU first,
# in one process (-n 0: two workers would each reserve most of the GPU memory).
JAX_PLATFORMS=cuda,cpu timeout 240 python -m pytest -q -n 0 -p no:cacheprovider tests/test_gpu.py \
  2>&1 | tee "$OUT_DIR/test_gpu.log" | tail -n 25
echo "gpu tests: exit ${PIPESTATUS[0]} after $((SECONDS - START)) s"

JAX_PLATFORMS=cuda,cpu timeout 330 jaxrec bench --suite quick --out "$OUT_DIR/bench" \
  2>&1 | tee "$OUT_DIR/bench.log" | grep -E "done|failed|wrote"
echo "quick suite: exit ${PIPESTATUS[0]} after $((SECONDS - START)) s"
cat "$OUT_DIR/bench/results.md" 2>/dev/null || echo "no results.md (see $OUT_DIR/bench.log)"
