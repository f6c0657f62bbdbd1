"""model.compute_dtype=bfloat16: bf16 compute, float32 parameters and optimizer state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import overrides

from jaxrec import sharding, trainer
from jaxrec.config import load_config
from jaxrec.step import compile_train_step

# One per family by default; the rest (and IRGAN, slow to compile) with -m slow.
MODELS = ["gru4rec", "multvae", "cfgan"] + [
    pytest.param(m, marks=pytest.mark.slow)
    for m in ("caser", "nextitnet", "cdae", "autorec", "irgan")
]


def _first_step(model, dtype, tmp_path, ratings_file):
    cfg = load_config(None, [*overrides(model, tmp_path, ratings_file),
                             f"model.compute_dtype={dtype}"])  # fmt: skip
    run = trainer.prepare(cfg)
    batch = next(iter(run.task.dataset(0, 1)))
    batch.pop("_epoch"), batch.pop("_last")
    batch = sharding.shard_batch(batch, run.mesh, run.task.batch_axis)
    step = compile_train_step(run.task.train_step, run.mesh, run.shardings)
    state, metrics = step(run.state, batch, jax.random.key(0))
    return run, state, metrics


@pytest.mark.parametrize("model", MODELS)
def test_bf16_compute_keeps_float32_state_and_close_losses(model, tmp_path, ratings_file):
    run, state, m16 = _first_step(model, "bfloat16", tmp_path, ratings_file)
    run32, _, m32 = _first_step(model, "float32", tmp_path, ratings_file)
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)
    loss16, loss32 = float(m16["loss"]), float(m32["loss"])
    assert np.isfinite(loss16)
    np.testing.assert_allclose(loss16, loss32, rtol=0.05)
    # The model really computes in bf16: same parameters, slightly different float32 scores.
    hist, _ = run.split.stage("test")
    users = np.arange(4, dtype=np.int32)
    ids, mask = hist.padded(users, 16)
    s16 = np.asarray(jax.jit(run.task.score)(state.params, users, ids, mask))
    s32 = np.asarray(jax.jit(run32.task.score)(state.params, users, ids, mask))
    assert s16.dtype == s32.dtype == np.float32
    assert not np.array_equal(s16, s32)
    np.testing.assert_allclose(s16, s32, rtol=0.05, atol=0.05 * np.abs(s32).max())
