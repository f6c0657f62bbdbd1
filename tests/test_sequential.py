"""The GRU4Rec task: sparse row-wise training equals dense training, donation, no retrace."""

import functools

import jax
import numpy as np
import pytest
from tiny import task_setup

from jaxrec import sharding
from jaxrec.errors import ConfigError

SMALL = [
    "model.gru4rec.layers=[12]",
    "loss.n_sample=8",
    "train.batch_size=8",
    "train.steps_per_call=4",
    "data.synthetic.num_users=60",
    "data.synthetic.num_items=40",
]


def _setup(extra=()):
    _, _, task, state, batches = task_setup([*SMALL, *extra])
    return task, state, batches


def _train(task, state, batches, n):
    step = jax.jit(task.train_step)
    losses = []
    for b in batches[:n]:
        state, m = step(state, b, jax.random.key(1))
        losses.append(float(m["loss"]))
    return state, losses


def test_sparse_row_updates_equal_dense_updates():
    for loss in ("cross-entropy", "bpr-max", "top1-max"):
        extra = [f"loss.kind={loss}", "model.gru4rec.final_act=linear", "loss.logq=0"]
        task_s, state_s, batches = _setup([*extra, "optim.sparse=true"])
        task_d, state_d, _ = _setup([*extra, "optim.sparse=false"])
        assert set(state_s.table_slots) == {"Wy", "By"} and state_d.table_slots == {}
        state_s, loss_s = _train(task_s, state_s, batches, 6)
        state_d, loss_d = _train(task_d, state_d, batches, 6)
        np.testing.assert_allclose(loss_s, loss_d, rtol=2e-5)
        for k in state_d.params:
            np.testing.assert_allclose(
                state_s.params[k], state_d.params[k], rtol=2e-4, atol=2e-6, err_msg=(loss, k)
            )


def test_training_reduces_loss_and_uses_step_for_randomness():
    task, state, batches = _setup(["train.epochs=3"])
    state, losses = _train(task, state, batches, len(batches))
    assert int(state.step) > 0
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_step_is_traced_once_and_donates_state():
    task, state, batches = _setup()
    traces = []

    @functools.wraps(task.train_step)
    def counted(*args):
        traces.append(1)
        return task.train_step(*args)

    # As the trainer does: state placed by its logical shardings, kept there by the step.
    mesh = sharding.make_mesh(-1, 1)
    abstract = jax.eval_shape(task.init_state, jax.random.key(0))
    shardings = sharding.logical_shardings(mesh, abstract)
    state = jax.device_put(state, shardings)
    step = jax.jit(counted, donate_argnums=0, out_shardings=(shardings, sharding.replicated(mesh)))
    for b in batches[:3]:
        old = state
        state, _ = step(state, sharding.shard_batch(b, mesh, 1), jax.random.key(0))
        assert old.params["Wy"].is_deleted()  # donated: updated in place
    assert len(traces) == 1


def test_all_padding_block_changes_nothing():
    task, state, batches = _setup(["optim.momentum=0.5"])
    state, _ = _train(task, state, batches, 2)
    empty = {k: np.zeros_like(v) for k, v in batches[0].items()}
    new, m = jax.jit(task.train_step)(state, empty, jax.random.key(3))
    assert int(m["examples"]) == 0 and int(new.step) == int(state.step)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        assert np.array_equal(a, b)


def test_lazy_adam_tables_match_dense_adam_while_every_row_is_touched():
    # 40 items and 2048 shared negatives: every row is touched at every step, where lazy Adam
    # is exactly Adam; per-table choice: Wy lazy Adam, By dense.
    extra = ["optim.name=adam", "optim.learning_rate=0.01", "loss.n_sample=2048"]
    task_s, state_s, batches = _setup([*extra, "optim.tables={Wy: lazy_adam, By: dense}"])
    task_d, state_d, _ = _setup([*extra, "optim.sparse=false"])
    assert set(state_s.table_slots) == {"Wy"} and set(state_s.table_slots["Wy"]) == {"m", "v"}
    state_s, loss_s = _train(task_s, state_s, batches, 4)
    state_d, loss_d = _train(task_d, state_d, batches, 4)
    np.testing.assert_allclose(loss_s, loss_d, rtol=1e-5)
    for k in state_d.params:
        np.testing.assert_allclose(state_s.params[k], state_d.params[k], rtol=1e-4, atol=1e-6)


def test_optim_tables_are_checked():
    with pytest.raises(ConfigError, match="not item tables"):
        _setup(["optim.tables={Wz: adagrad}"])
    with pytest.raises(ConfigError, match="lazy_adam"):
        _setup(["optim.tables={Wy: rmsprop}"])
    # Row-wise tables asked for together with a knob that moves every row: an error, not
    # a silently dense update; a table kept dense is compatible with both.
    for knob in ("optim.weight_decay=0.01", "optim.clip_norm=1.0"):
        with pytest.raises(ConfigError, match=knob.split("=")[0]):
            _setup(["optim.name=adam", "optim.tables={Wy: lazy_adam}", knob])
    _setup(["optim.name=adam", "optim.tables={Wy: dense}", "optim.clip_norm=1.0"])
