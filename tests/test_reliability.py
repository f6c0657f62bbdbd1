"""Kill, preempt, corrupt and resume `jaxrec train`: the result is the uninterrupted one.

Each run is a real `python -m jaxrec.cli train` process on one CPU device. The process is
killed at exact points by `JAXREC_TEST_CRASH_AT=point:n[:SIGNAL]` (jaxrec.checkpoint.
crash_point): `step:n` right after the n-th compiled call is dispatched (mid-step),
`checkpoint:n` while the n-th checkpoint is being written, `eval:n` during the n-th
validation. Rerunning the same command must end bit-identical to a run never interrupted:
same metrics, same final train state, same best parameters.

To cover a new model family, add a (name, overrides) row to MODELS (and, optionally, its
mid-step crash points to STEP_CRASHES).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODELS = {
    "gru4rec": [
        "data.synthetic.num_users=120",
        "data.synthetic.num_items=60",
        "data.synthetic.mean_length=8",
        "model.gru4rec.layers=[16]",
        "loss.n_sample=16",
        "train.batch_size=16",
        "train.steps_per_call=4",  # 12 compiled calls per epoch
    ],
    "multvae": [  # an autoencoder (held-out users, Adam)
        "model.name=multvae",
        "data.synthetic.num_users=160",
        "data.synthetic.num_items=40",
        "data.synthetic.mean_length=8",
        "data.split=heldout_users",
        "data.valid_users=30",
        "data.test_users=30",
        "model.vae.layers=[16,8]",
        "optim.name=adam",
        "optim.learning_rate=0.01",
        "train.batch_size=16",
    ],
    "cfgan": [  # a GAN (two networks in one state)
        "model.name=cfgan",
        "data.synthetic.num_users=64",
        "data.synthetic.num_items=40",
        "data.synthetic.mean_length=8",
        "data.split=temporal_ratio",
        "train.batch_size=16",
        "model.cfgan.generator=[16]",
        "model.cfgan.discriminator=[8]",
        "model.cfgan.g_batch_size=8",
        "model.cfgan.d_batch_size=16",
        "optim.name=adam",
        "optim.learning_rate=0.001",
    ],
}
COMMON = [
    "train.epochs=3",
    "eval.protocols=[full]",
    "eval.baselines=[]",
    "eval.chunk_size=64",
]
# crash spec → exit status of the interrupted run; these points exist in every family
CRASHES = {
    "checkpoint:2": -9,  # SIGKILL while writing the 2nd checkpoint (fast variant below)
    "eval:2": -9,  # SIGKILL during the 2nd validation
    "eval:2:SIGTERM": 143,  # preemption during validation: checkpoint, exit, redo it
}
# Mid-step points depend on the number of compiled calls per epoch (12 for this gru4rec).
STEP_CRASHES = {
    "gru4rec": {
        "step:18": -9,  # SIGKILL mid-step in epoch 2, state donated and in flight
        "step:30:SIGTERM": 143,  # preemption mid-epoch 3: checkpoint at the step boundary
    },
}
FAST = {("gru4rec", "checkpoint:2")}


def _env(cache: Path, crash: str | None = None) -> dict:
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "PYTHONUNBUFFERED": "1",
        # Later processes reuse the compiled steps: the tests' time is mostly compilation.
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    env.pop("JAXREC_TEST_CRASH_AT", None)
    env.pop("XLA_FLAGS", None)
    if crash:
        env["JAXREC_TEST_CRASH_AT"] = crash
    return env


def train(workdir: Path, model: str, cache: Path, crash: str | None = None, extra=()):
    sets = []
    for s in [*MODELS[model], *COMMON, *extra]:
        sets += ["--set", s]
    cmd = [sys.executable, "-m", "jaxrec.cli", "train", "--workdir", str(workdir), *sets]
    return subprocess.run(cmd, env=_env(cache, crash), capture_output=True, text=True, timeout=600)


def outcome(workdir: Path):
    """(test metrics without timings, every leaf of the final state and best params)."""
    import jax

    from jaxrec import trainer
    from jaxrec.checkpoint import Checkpointer
    from jaxrec.config import load_config

    rows = json.loads((workdir / "results.json").read_text())["results"]
    metrics = [
        {k: v for k, v in r.items() if k not in ("seconds", "users_per_second")} for r in rows
    ]
    run = trainer.prepare(load_config(workdir / "config.yaml"))
    ckpt = Checkpointer(workdir / "checkpoints")
    it = iter(run.task.dataset(0, 1))
    state, best, meta = ckpt.restore(run.state, run.state.params, it)
    ckpt.close()
    leaves = jax.tree_util.tree_flatten_with_path((state, best))[0]
    return metrics, {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}, meta


def assert_same(a: Path, b: Path):
    ma, pa, meta_a = outcome(a)
    mb, pb, meta_b = outcome(b)
    assert ma == mb
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    assert meta_a == meta_b


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run per model, shared by every test of this module."""
    cache = tmp_path_factory.mktemp("jax-cache")
    runs = {}

    def get(model):
        if model not in runs:
            wd = tmp_path_factory.mktemp(f"straight-{model}")
            r = train(wd, model, cache)
            assert r.returncode == 0, r.stderr
            runs[model] = wd
        return runs[model], cache

    return get


CASES = [
    pytest.param(m, c, marks=() if (m, c) in FAST else pytest.mark.slow, id=f"{m}-{c}")
    for m in MODELS
    for c in {**CRASHES, **STEP_CRASHES.get(m, {})}
]


@pytest.mark.parametrize("model,crash", CASES)
def test_killed_then_rerun_is_bit_identical(reference, tmp_path, model, crash):
    straight, cache = reference(model)
    wd = tmp_path / "resumed"
    first = train(wd, model, cache, crash)
    status = {**CRASHES, **STEP_CRASHES.get(model, {})}[crash]
    assert first.returncode == status, first.stderr[-3000:]
    if status == 143:
        assert "SIGTERM: saved step" in first.stdout
    second = train(wd, model, cache)
    assert second.returncode == 0, second.stderr[-3000:]
    if crash.startswith("checkpoint") or status == 143:  # a complete checkpoint exists
        assert "resumed from" in second.stdout
    assert not list((wd / "checkpoints").glob("*tmp*"))  # orbax cleaned the half-written one
    assert_same(straight, wd)


def _truncate(step_dir: Path):
    f = max((p for p in step_dir.rglob("*") if p.is_file() and "/d/" in str(p)), key=_size)
    f.write_bytes(f.read_bytes()[: _size(f) // 2])


def _garble(step_dir: Path):
    f = max((p for p in step_dir.rglob("*") if p.is_file() and "/d/" in str(p)), key=_size)
    data = bytearray(f.read_bytes())
    for i in range(0, len(data), 7):
        data[i] ^= 0x5A
    f.write_bytes(bytes(data))


def _delete(step_dir: Path):
    (step_dir / "state" / "_METADATA").unlink()


def _size(p: Path) -> int:
    return p.stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("corrupt", [_truncate, _garble, _delete], ids=lambda f: f.__name__[1:])
def test_corrupt_newest_checkpoint_falls_back_and_ends_identical(reference, tmp_path, corrupt):
    straight, cache = reference("gru4rec")
    wd = tmp_path / "w"
    # Killed while writing the 3rd checkpoint: the 1st and 2nd are complete and sealed.
    first = train(wd, "gru4rec", cache, "checkpoint:3")
    assert first.returncode == -9
    steps = sorted(int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) == 2
    corrupt(wd / "checkpoints" / str(steps[-1]))
    second = train(wd, "gru4rec", cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"checkpoint step {steps[-1]}" in second.stderr and "corrupt" in second.stderr
    assert f"at step {steps[0]}, epoch 1" in second.stdout
    kept = list((wd / "checkpoints.corrupt").iterdir())  # moved aside, not deleted
    assert [p.name.split("-")[0] for p in kept] == [str(steps[-1])]
    assert_same(straight, wd)


def test_second_train_on_a_workdir_in_use_is_refused(tmp_path, capsys):
    from jaxrec.cli import main
    from jaxrec.workdir import WorkdirLock

    wd = tmp_path / "w"
    wd.mkdir()
    with WorkdirLock(wd):
        assert main(["train", "--workdir", str(wd), "--set", "train.epochs=0"]) == 2
    err = capsys.readouterr().err
    assert f"{wd} is in use by another `jaxrec train` (pid {os.getpid()})" in err
    assert "Traceback" not in err


def test_lock_of_a_killed_process_is_free(tmp_path):
    code = (
        "import sys, time; from jaxrec.workdir import WorkdirLock; "
        "WorkdirLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    from jaxrec.errors import CheckpointError
    from jaxrec.workdir import WorkdirLock

    with pytest.raises(CheckpointError, match="in use"):
        WorkdirLock(tmp_path).acquire()
    proc.kill()
    proc.wait(timeout=30)
    WorkdirLock(tmp_path).acquire().release()  # SIGKILL released it: never stale


def test_unwritable_or_full_workdir_is_reported_before_training(tmp_path, capsys, monkeypatch):
    from jaxrec import workdir
    from jaxrec.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--workdir", str(blocker / "w")]) == 2
    assert "cannot create the workdir" in capsys.readouterr().err

    wd = tmp_path / "full"
    wd.mkdir()
    (wd / ".write-probe").symlink_to("/dev/full")  # every write: ENOSPC
    assert main(["train", "--workdir", str(wd)]) == 2
    err = capsys.readouterr().err
    assert "cannot write to" in err and "No space left on device" in err
    assert not (wd / "checkpoints").exists()

    with pytest.raises(workdir.CheckpointError, match="MiB free but 3 checkpoints"):
        monkeypatch.setattr(
            workdir.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(9, 9, 1)
        )
        workdir.check_free_space(wd, 1 << 20, keep=2)


def test_sigterm_during_a_long_uninterruptible_call_exits_within_the_grace():
    """SIGTERM while the main thread is inside one long C call (as in an XLA compile):
    Python cannot run the handler until the call returns, yet the watchdog (started from
    the signal wakeup fd) ends the process at the deadline, well before the call returns."""
    code = """
import os, signal, threading, time
import numpy as np
from jaxrec.workdir import Preemption
a = np.random.default_rng(0).random((2000, 2000))
with Preemption(grace=0.3):
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.perf_counter()
    np.linalg.eigvals(a)  # many seconds inside LAPACK
    print(f"returned after {time.perf_counter() - t0:.3f}", flush=True)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 143, (r.stdout, r.stderr)
    assert "no clean stop within train.preempt_grace_seconds=0.3" in r.stderr
    assert "returned after" not in r.stdout


def _toy():
    """A toy train state and step (the guard only needs `.step` and a pytree)."""
    import jax.numpy as jnp
    from flax import struct

    class State(struct.PyTreeNode):
        step: object
        params: dict

    def train_step(state, batch, rng):
        params = {"w": state.params["w"] * batch["x"]}
        loss = jnp.sum(params["w"])
        return state.replace(step=state.step + 1, params=params), {"loss": loss}

    state = State(step=jnp.zeros((), jnp.int32), params={"w": jnp.arange(1.0, 5.0)})
    return state, train_step


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_nonfinite_guard_flags_on_device_and_skip_keeps_the_state(policy):
    import jax
    import jax.numpy as jnp

    from jaxrec.step import guard_nonfinite

    state, train_step = _toy()
    step = jax.jit(guard_nonfinite(train_step, policy), donate_argnums=0)
    key = jax.random.key(0)
    state, m = step(state, {"x": jnp.float32(2.0)}, key)
    assert bool(m["finite"]) and int(m["step_before"]) == 0 and int(m["step_after"]) == 1
    np.testing.assert_array_equal(state.params["w"], [2.0, 4.0, 6.0, 8.0])
    state, m = step(state, {"x": jnp.float32(np.nan)}, key)
    assert not bool(m["finite"]) and int(m["step_before"]) == 1
    if policy == "skip":  # the update is dropped: same parameters, same step
        assert int(m["step_after"]) == 1 and int(state.step) == 1
        np.testing.assert_array_equal(state.params["w"], [2.0, 4.0, 6.0, 8.0])
        state, m = step(state, {"x": jnp.float32(np.inf)}, key)  # loss inf, params inf
        assert not bool(m["finite"]) and int(state.step) == 1
        state, m = step(state, {"x": jnp.float32(0.5)}, key)  # training goes on
        np.testing.assert_array_equal(state.params["w"], [1.0, 2.0, 3.0, 4.0])
        assert int(state.step) == 2 and bool(m["finite"])
    else:  # stop: the host stops; the state is not protected (the checkpoint is)
        assert int(m["step_after"]) == 2 and np.isnan(state.params["w"]).all()


@pytest.mark.slow  # an in-process training run; the guard itself is tested above
def test_skip_policy_counts_skipped_updates_and_never_saves_a_broken_state(tmp_path):
    import jax

    from jaxrec import trainer
    from jaxrec.config import load_config

    sets = [*MODELS["gru4rec"], *COMMON, "train.epochs=1", "train.nonfinite=skip"]
    cfg = load_config(None, [*sets, "optim.learning_rate=.inf"])
    trainer.train_and_evaluate(cfg, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert train_rows and train_rows[-1]["skipped_calls_total"] == 12  # every call diverged
    assert sum(r["skipped_calls"] for r in train_rows) == 12
    _, params, meta = outcome(tmp_path)
    assert meta["skipped"] == 12
    init = jax.tree_util.tree_flatten_with_path(trainer.prepare(cfg).state.params)[0]
    for k, v in init:  # nothing moved, and the checkpoint holds finite numbers only
        assert np.array_equal(params["[0].params" + jax.tree_util.keystr(k)], v)
    assert all(np.isfinite(v).all() for v in params.values() if v.dtype.kind == "f")
