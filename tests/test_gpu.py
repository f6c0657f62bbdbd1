"""On a CUDA GPU: train steps and exported scorers give the CPU's numbers.

Skipped, with the reason, where no GPU is visible; `benchmarks/gpu_check.sh` runs this file
with `JAX_PLATFORMS=cuda,cpu`, so the GPU is the default device and the CPU the reference.
`JAXREC_GPU_TEST_ON_CPU=1` points the same checks at a second fake CPU device, which proves the
test mechanics (placement, comparison) on a machine without a GPU.
"""

import os

import jax
import numpy as np
import pytest
from tiny import FAMILIES, TINY, task_setup

from jaxrec import trainer
from jaxrec.config import load_config
from jaxrec.serving.export import export_run
from jaxrec.serving.scorer import exported_score


def _target():
    try:
        return jax.devices("cuda")[0]
    except RuntimeError:
        if os.environ.get("JAXREC_GPU_TEST_ON_CPU") == "1":
            return jax.devices("cpu")[1]
        return None


pytestmark = pytest.mark.skipif(
    _target() is None, reason="needs a CUDA GPU: benchmarks/gpu_check.sh runs it on one"
)
# AutoRec needs a ratings file (test_autorec covers it); the GANs sample items from softmax
# scores, so after the first update a last-bit difference may flip a sample: one step for them.
STEPS = {"cfgan": 1, "irgan": 1}
GPU_FAMILIES = [f for f in FAMILIES if f[0] != "autorec"]


@pytest.mark.parametrize("model,extra", GPU_FAMILIES, ids=[f[0] for f in GPU_FAMILIES])
def test_train_steps_on_gpu_equal_cpu(model, extra):
    _, _, task, state, batches = task_setup([f"model.name={model}", *TINY, *extra])
    state = jax.device_get(state)
    results = {}
    # XLA's GPU float32 dots default to TF32; "highest" makes them comparable with the CPU.
    with jax.default_matmul_precision("highest"):
        for name, device in (("cpu", jax.devices("cpu")[0]), ("target", _target())):
            s, step, losses = jax.device_put(state, device), jax.jit(task.train_step), []
            for b in batches[: STEPS.get(model, 3)]:
                s, m = step(s, jax.device_put(b, device), jax.random.key(1))
                losses.append(float(m["loss"]))
            assert next(iter(jax.tree.leaves(s.params))).devices() == {device}
            results[name] = jax.device_get(s.params), losses
    np.testing.assert_allclose(results["target"][1], results["cpu"][1], rtol=1e-4, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5),
        results["target"][0],
        results["cpu"][0],
    )


@pytest.mark.parametrize("model,extra", GPU_FAMILIES, ids=[f[0] for f in GPU_FAMILIES])
def test_exported_scorer_on_gpu_equals_jitted_on_cpu(model, extra, tmp_path):
    run = trainer.prepare(load_config(None, [f"model.name={model}", *TINY, *extra]))
    params = jax.device_get(run.state.params)
    hist, _ = run.split.stage("test")
    users = np.arange(9, dtype=np.int32)
    ids, mask = hist.padded(users, 16)
    cpu = jax.devices("cpu")[0]
    with jax.default_matmul_precision("highest"):  # traced into the export: no TF32 on the GPU
        path = export_run(run, params, tmp_path / "scorer", max_k=20)
        with jax.default_device(cpu):
            want = jax.jit(run.task.score)(params, users, ids, mask)
        target = _target()
        got = exported_score(path)(*jax.device_put((params, users, ids, mask), target))
    assert got.devices() == {target}
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
