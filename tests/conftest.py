"""Every test runs on 8 fake CPU devices (DESIGN.md §4.7), set before any JAX op."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile hundreds of small programs and run each a few times: XLA's compiler, not the
# programs, takes their time. Without LLVM's optimisations the suite runs about twice as
# fast with the same results; subprocesses (CLI, bench) inherit it. Set XLA_FLAGS yourself to test optimised code.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# This project keeps its data sets beside the repository (../shared/data); the library's data
# directory is $JAXREC_DATA_DIR (jaxrec.data.load.data_dir), so the tests and their
# subprocesses point it there.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if _SHARED.is_dir():
    os.environ.setdefault("JAXREC_DATA_DIR", str(_SHARED))

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


def _ratings_file(path, users=60, items=30, seed=0):
    """A MovieLens-100K u.data file with planted low-rank ratings in 1..5 (~40% density)."""
    rng = np.random.default_rng(seed)
    pu, qi = rng.normal(size=(users, 2)), rng.normal(size=(items, 2))
    lines = []
    for u in range(users):
        for i in np.flatnonzero(rng.random(items) < 0.4):
            r = int(np.clip(np.round(3 + pu[u] @ qi[i]), 1, 5))
            lines.append(f"{u + 1}\t{i + 1}\t{r}\t{1000 + len(lines)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def ratings_file():
    """`ratings_file(path, users=60, items=30, seed=0)` writes explicit ratings → path."""
    return _ratings_file
