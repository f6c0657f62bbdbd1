"""GRU4Rec: the model against numpy, and the task (sparse row-wise training equals dense
training, donation, no retrace)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from tiny import task_setup

from jaxrec import sharding
from jaxrec.errors import ConfigError
from jaxrec.models.gru4rec import GRU4Rec


def _init(model, B=3):
    hidden = model.init_hidden(B)
    params = model.init(jax.random.key(0), jnp.zeros((B,), jnp.int32), hidden)["params"]
    return nn.meta.unbox(params)


def _np_cell(x_gates, h, Wh, b):
    H = h.shape[1]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    g = x_gates + b
    r = sig(g[:, H : 2 * H] + h @ Wh[:, H : 2 * H])
    z = sig(g[:, 2 * H :] + h @ Wh[:, 2 * H :])
    cand = np.tanh(g[:, :H] + (r * h) @ Wh[:, :H])
    return (1 - z) * h + z * cand


@pytest.mark.parametrize("style", ["constrained", "embedding", "onehot"])
def test_step_matches_numpy_gru(style):
    kw = {
        "constrained": dict(),
        "embedding": dict(embedding=5, constrained_embedding=False),
        "onehot": dict(constrained_embedding=False),
    }[style]
    model = GRU4Rec(num_items=11, layers=(4,), **kw)
    p = jax.tree.map(np.asarray, _init(model))
    items = jnp.array([1, 4, 10])
    h0 = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    (h1,), out = model.apply({"params": p}, items, (jnp.asarray(h0),))
    if style == "constrained":
        gates = p["Wy"][np.asarray(items)] @ p["Wx0"]
    elif style == "embedding":
        gates = p["E"][np.asarray(items)] @ p["Wx0"]
    else:
        gates = p["Wx0"][np.asarray(items)]
    want = _np_cell(gates, h0, p["Wh0"], p["b0"])
    np.testing.assert_allclose(h1, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, h1)
    scores = model.apply({"params": p}, out, method="score")
    np.testing.assert_allclose(scores, want @ p["Wy"].T + p["By"], rtol=1e-5, atol=1e-5)


def test_encode_equals_stepping_and_ignores_left_padding():
    model = GRU4Rec(num_items=20, layers=(6, 5))
    p = _init(model)
    seq = jnp.array([[3, 7, 1, 9]])
    hidden = model.init_hidden(1)
    for t in range(4):
        hidden, out = model.apply({"params": p}, seq[:, t], hidden)
    ids = jnp.array([[0, 0, 3, 7, 1, 9]])
    mask = jnp.array([[False, False, True, True, True, True]])
    enc = model.apply({"params": p}, ids, mask, method="encode")
    np.testing.assert_allclose(enc, out, rtol=1e-5, atol=1e-6)


def test_official_init_range_and_logical_axes():
    model = GRU4Rec(num_items=1000, layers=(100,))
    boxed = model.init(jax.random.key(0), jnp.zeros((2,), jnp.int32), model.init_hidden(2))
    specs = nn.get_partition_spec(boxed)["params"]
    assert tuple(specs["Wy"]) == ("items", "embed")
    p = nn.meta.unbox(boxed)["params"]
    s = np.sqrt(6 / (1000 + 100))
    assert np.abs(p["Wy"]).max() <= s and np.abs(p["Wy"]).max() > 0.9 * s
    assert p["Wh0"].shape == (100, 300)


def test_dropout_only_in_training():
    model = GRU4Rec(num_items=10, layers=(8,), dropout_hidden=0.5)
    p = _init(model, B=2)
    h = model.init_hidden(2)
    _, a = model.apply({"params": p}, jnp.array([1, 2]), h)
    _, b = model.apply({"params": p}, jnp.array([1, 2]), h)
    np.testing.assert_array_equal(a, b)
    _, c = model.apply(
        {"params": p}, jnp.array([1, 2]), h, train=True, rngs={"dropout": jax.random.key(1)}
    )
    assert (np.asarray(c) == 0).any()


# --- the task -----------------------------------------------------------------------------------


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
