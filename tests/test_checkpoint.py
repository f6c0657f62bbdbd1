"""Checkpointer: manifests, fallback past corrupt checkpoints, failed saves keep the old ones."""

import errno
import json
import threading

import flax
import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.checkpoint import MANIFEST, Checkpointer, CorruptCheckpointWarning, verify_manifest
from jaxrec.errors import CheckpointError

STATE = {"table": jnp.arange(4096.0).reshape(512, 8), "bias": jnp.ones((8,))}


def _iterator():
    return iter(grain.MapDataset.range(100).to_iter_dataset())


def _save_steps(directory, steps=(1, 2, 3), keep=3):
    ckpt = Checkpointer(directory, keep)
    it = _iterator()
    for s in steps:
        next(it)
        ckpt.save(s, jax.tree.map(lambda x, s=s: x + s, STATE), STATE, it, {"epoch": s})
    ckpt.close()


def _restore(directory, **kw):
    ckpt = Checkpointer(directory, 3)
    it = _iterator()
    try:
        state, _, meta = ckpt.restore(STATE, STATE, it, **kw)
    finally:
        ckpt.close()
    return state, meta, next(it)


def _data_file(step_dir):
    return max(
        (p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
        key=lambda p: p.stat().st_size,
    )


def truncate(step_dir):
    f = _data_file(step_dir)
    f.write_bytes(f.read_bytes()[:-10])


def truncate_half(step_dir):
    f = _data_file(step_dir)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def garble(step_dir):
    # Same size, one flipped byte: only the checksum can tell.
    f = _data_file(step_dir)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))


def delete_file(step_dir):
    (step_dir / "state" / "_METADATA").unlink()


def delete_data(step_dir):
    _data_file(step_dir).unlink()


def empty_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text("")


def test_every_finished_checkpoint_is_sealed_and_verifies(tmp_path):
    _save_steps(tmp_path)
    for s in (1, 2, 3):
        entries = json.loads((tmp_path / str(s) / MANIFEST).read_text())
        assert "state/_METADATA" in entries and verify_manifest(tmp_path / str(s)) is None
    state, meta, position = _restore(tmp_path)
    assert meta == {"epoch": 3} and position == 3
    np.testing.assert_array_equal(state["table"], STATE["table"] + 3)


@pytest.mark.parametrize("corrupt", [truncate, garble, delete_file, empty_meta])
def test_corrupt_newest_falls_back_with_a_warning_and_is_kept_aside(tmp_path, corrupt):
    directory = tmp_path / "checkpoints"
    _save_steps(directory)
    corrupt(directory / "3")
    with pytest.warns(CorruptCheckpointWarning, match="checkpoint step 3 .* is corrupt"):
        state, meta, position = _restore(directory)
    assert meta == {"epoch": 2} and position == 2
    np.testing.assert_array_equal(state["table"], STATE["table"] + 2)
    assert not (directory / "3").exists()
    (moved,) = (tmp_path / "checkpoints.corrupt").iterdir()
    assert moved.name.startswith("3-") and (moved / "state").is_dir()  # evidence kept


@pytest.mark.parametrize("corrupt", [truncate_half, delete_data, empty_meta])
def test_unsealed_corrupt_checkpoint_is_caught_by_loading(tmp_path, corrupt):
    """A checkpoint without manifest (crash right after the write) is tried by loading.

    Best effort: orbax misses some damage (10 bytes cut off the end of a data file, or a
    deleted `_METADATA`, load fine), which is why finished checkpoints are sealed with checksums."""
    directory = tmp_path / "checkpoints"
    _save_steps(directory)
    (directory / "3" / MANIFEST).unlink()
    corrupt(directory / "3")
    with pytest.warns(CorruptCheckpointWarning, match="does not load"):
        _, meta, _ = _restore(directory)
    assert meta == {"epoch": 2}


def test_all_corrupt_is_an_error_that_says_what_to_do(tmp_path):
    _save_steps(tmp_path, steps=(1,))
    garble(tmp_path / "1")
    with pytest.warns(CorruptCheckpointWarning), pytest.raises(CheckpointError, match="no intact"):
        _restore(tmp_path)


@flax.struct.dataclass
class _State:
    params: dict
    step: jax.Array


def test_evaluate_side_restore_falls_back_without_moving_anything(tmp_path):
    ckpt = Checkpointer(tmp_path, 3)
    for s in (1, 2, 3):
        state = _State(params=jax.tree.map(lambda x, s=s: x + s, STATE), step=jnp.int32(s))
        ckpt.save(s, state, STATE, _iterator(), {"epoch": s})
    ckpt.close()
    garble(tmp_path / "3")
    ckpt = Checkpointer(tmp_path, 3)
    with pytest.warns(CorruptCheckpointWarning):
        # no "best" in the meta: no validation picked an epoch, so the state's params
        params, meta, step = ckpt.restore_tested(_State(params=STATE, step=jnp.int32(0)))
    ckpt.close()
    assert meta == {"epoch": 2} and step == 2 and (tmp_path / "3").is_dir()
    np.testing.assert_array_equal(params["bias"], STATE["bias"] + 2)


def test_tested_params_are_the_best_where_validation_picked_them_else_the_last(tmp_path):
    """The parameters every workdir command uses: `best` when a validation stage set
    meta["best"], else the train state's own (never the untrained copy `best` starts as)."""
    last = {k: v + 7 for k, v in STATE.items()}
    for directory, meta, want in (
        (tmp_path / "picked", {"epoch": 3, "best": 0.5, "best_epoch": 2}, STATE),
        (tmp_path / "none", {"epoch": 3, "best": None, "best_epoch": 0}, last),
    ):
        ckpt = Checkpointer(directory, 2)
        it = _iterator()
        ckpt.save(3, _State(params=last, step=jnp.int32(3)), STATE, it, meta)
        ckpt.close()
        ckpt = Checkpointer(directory, 2)
        params, got_meta, step = ckpt.restore_tested(_State(params=STATE, step=jnp.int32(0)))
        ckpt.close()
        assert got_meta == meta and step == 3
        for k in STATE:
            np.testing.assert_array_equal(params[k], want[k])


def test_failed_save_reports_and_keeps_every_good_checkpoint(tmp_path, monkeypatch):
    _save_steps(tmp_path, steps=(1, 2), keep=2)
    before = {p.name: verify_manifest(p) for p in tmp_path.iterdir()}
    ckpt = Checkpointer(tmp_path, 2)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.manager, "save", full)
    with pytest.raises(CheckpointError, match="No space left on device.*earlier checkpoints"):
        ckpt.save(3, STATE, STATE, _iterator(), {"epoch": 3})
    ckpt.close()
    assert before == {"1": None, "2": None}
    assert all((tmp_path / s / MANIFEST).exists() for s in before)
    assert {p.name: verify_manifest(p) for p in tmp_path.iterdir()} == before


def test_failed_background_write_reports_at_the_next_save(tmp_path, monkeypatch):
    _save_steps(tmp_path, steps=(1,), keep=2)
    ckpt = Checkpointer(tmp_path, 2)
    it = _iterator()

    wait = ckpt.manager.wait_until_finished

    def broken():  # the background write of step 2 fails (seen by the sealer thread)
        if threading.current_thread() is not threading.main_thread():
            raise OSError(errno.ENOSPC, "No space left on device")
        wait()

    monkeypatch.setattr(ckpt.manager, "wait_until_finished", broken)
    ckpt.save(2, STATE, STATE, it, {"epoch": 2})
    with pytest.raises(CheckpointError, match="writing a checkpoint .* failed"):
        ckpt.save(3, STATE, STATE, it, {"epoch": 3})
    monkeypatch.undo()
    ckpt.close()
    assert (tmp_path / "1" / MANIFEST).exists() and verify_manifest(tmp_path / "1") is None


def test_saving_an_existing_step_replaces_it_only_once_the_new_one_is_sealed(tmp_path):
    """A preempted validation is redone on resume and saved again at the same step."""
    directory = tmp_path / "checkpoints"
    _save_steps(directory, steps=(1, 2), keep=2)
    ckpt = Checkpointer(directory, 2)
    it = _iterator()
    next(it), next(it)
    ckpt.save(2, jax.tree.map(lambda x: x + 7, STATE), STATE, it, {"epoch": 2, "redone": True})
    ckpt.close()
    state, meta, position = _restore(directory)
    assert meta == {"epoch": 2, "redone": True} and position == 2
    np.testing.assert_array_equal(state["table"], STATE["table"] + 7)
    assert verify_manifest(directory / "2") is None and (directory / "2" / MANIFEST).exists()
    assert (directory / "1").is_dir()
    assert not list((tmp_path / "checkpoints.replaced").iterdir())  # the old one, once sealed
