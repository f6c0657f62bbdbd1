"""The one compiled train step (`jaxrec.step.compile_train_step`): shardings, donation, one
compile per batch shape, the guard's metrics; and that the trainer and the bench use it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import overrides

from jaxrec import sharding, trainer
from jaxrec.config import load_config
from jaxrec.step import TrainStep, compile_train_step


def _run(tmp_path):
    run = trainer.prepare(load_config(None, overrides("gru4rec", tmp_path, None)))
    it = iter(run.task.dataset(0, 1))

    def batch():
        b = next(it)
        b.pop("_epoch"), b.pop("_last")
        return sharding.shard_batch(b, run.mesh, run.task.batch_axis)

    return run, batch


def test_step_donates_keeps_shardings_and_compiles_once(tmp_path):
    run, batch = _run(tmp_path)
    traces = []

    def counted(state, b, rng):
        traces.append(1)  # runs only while tracing
        return run.task.train_step(state, b, rng)

    step = compile_train_step(counted, run.mesh, run.shardings)
    state, key = run.state, jax.random.key(0)
    old = jax.tree.leaves(state)[0]
    state, m = step(state, batch(), key)
    assert old.is_deleted()  # the state was donated
    state, m = step(state, batch(), key)
    assert len(traces) == 1  # step 2: no retrace, no recompile
    assert {"finite", "step_before", "step_after", "loss"} <= set(m)
    assert bool(m["finite"]) and int(m["step_after"]) == int(state.step) > int(m["step_before"]) > 0
    want = jax.tree.leaves(run.shardings)
    for x, s in zip(jax.tree.leaves(state), want, strict=True):
        assert x.sharding.is_equivalent_to(s, x.ndim)
    assert all(v.sharding.is_fully_replicated for v in jax.tree.leaves(m))


def test_ahead_of_time_executable_gives_the_same_state(tmp_path):
    run, batch = _run(tmp_path)
    b, key = batch(), jax.random.key(0)
    copy = jax.tree.map(jnp.copy, run.state)
    step = compile_train_step(run.task.train_step, run.mesh, run.shardings)
    compiled = step.compile(run.state, b, key)
    assert compiled.cost_analysis() is not None
    a, _ = compiled(run.state, b, key)
    c, _ = step(copy, b, key)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_unknown_policy_is_refused():
    mesh = sharding.make_mesh(1, 1, devices=jax.devices()[:1])
    with pytest.raises(ValueError, match="stop, skip"):
        compile_train_step(lambda s, b, r: (s, {}), mesh, None, "ignore")


def test_trainer_and_bench_compile_through_it(tmp_path, monkeypatch):
    """Both build their step here: the bench times the program that trains."""
    from jaxrec import step as step_lib
    from jaxrec.bench import cases
    from jaxrec.bench.records import Recorder

    original, built = step_lib.compile_train_step, []

    def spy(*args, **kwargs):
        built.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "compile_train_step", spy)
    monkeypatch.setattr(step_lib, "compile_train_step", spy)
    run, _ = _run(tmp_path)
    workdir = tmp_path / "w"
    workdir.mkdir()
    loop = trainer._setup(run, workdir, lambda: None)
    loop.ckpt.close(), loop.writer.close()
    assert isinstance(loop.step, TrainStep) and built == [run.task.train_step]
    case = {"benchmark": "embedding-scale", "calls": 1, "repeats": 1, "warmup": 0}
    add = Recorder("embedding-scale", "gru4rec", "synthetic", {}, {})
    state = cases._train_records(run, case, add)
    assert built == [run.task.train_step] * 2 and int(state.step) > 0
    assert {r["metric"] for r in add.records} >= {"compile_time", "train_throughput"}
