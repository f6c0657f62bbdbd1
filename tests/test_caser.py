"""Caser: convolutions against numpy, training, sparse = dense, sharding, padding, one trace."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from tiny import task_setup

from jaxrec import baselines, evaluation, sharding
from jaxrec.cli import main
from jaxrec.errors import ConfigError
from jaxrec.models.caser import Caser

SMALL = [
    "model.name=caser",
    "model.caser.embedding=8",
    "model.caser.horizontal_filters=4",
    "model.caser.vertical_filters=2",
    "train.batch_size=16",
    "data.synthetic.num_users=60",
    "data.synthetic.num_items=40",
]


def _setup(extra=()):
    _, split, task, state, batches = task_setup([*SMALL, *extra])
    return task, state, batches, split


def _train(task, state, batches, n=None):
    step = jax.jit(task.train_step)
    losses = []
    for b in batches[:n]:
        state, m = step(state, b, jax.random.key(1))
        losses.append(float(m["loss"]))
    return state, losses


def test_convolutions_match_numpy_reference():
    L, d, nh, nv, B = 4, 3, 2, 2, 2
    model = Caser(num_items=7, num_users=3, length=L, embedding=d, horizontal_filters=nh,
                  vertical_filters=nv, dropout=0.0, conv_activation="tanh")  # fmt: skip
    users = jnp.array([0, 2], jnp.int32)
    ids = jnp.array([[1, 2, 3, 4], [0, 5, 6, 1]], jnp.int32)
    mask = jnp.array([[True] * 4, [False, True, True, True]])
    params = model.init(jax.random.key(0), users, ids, mask)["params"]
    p = jax.tree.map(np.asarray, nn.meta.unbox(params))
    emb = p["E"][np.asarray(ids)]
    emb[1, 0] = p["pad"]  # padded position reads the padding vector
    feats = []
    for h in range(1, L + 1):  # conv of height h, tanh, max over the L-h+1 positions
        w = p[f"conv_h{h}"].reshape(h, d, nh)
        conv = np.stack(
            [np.einsum("bkd,kdn->bn", emb[:, t : t + h], w) for t in range(L - h + 1)], 1
        )
        feats.append(np.tanh(conv + p[f"conv_h{h}_bias"]).max(axis=1))
    v = np.einsum("bld,ln->bnd", emb, p["conv_v"]) + p["conv_v_bias"][None, :, None]
    out = np.concatenate([v.reshape(B, -1), *feats], axis=1)
    z = np.maximum(out @ p["fc1"] + p["fc1_bias"], 0)
    want = np.concatenate([z, p["P"][[0, 2]]], axis=1)
    x = model.apply({"params": params}, users, ids, mask)
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)
    scores = model.apply({"params": params}, x, method="score")
    np.testing.assert_allclose(scores, want @ p["W2"].T + p["b2"], rtol=1e-5, atol=1e-6)
    assert scores.shape == (B, 7)


def test_score_reads_the_last_L_items_and_the_user():
    task, state, _, _ = _setup()
    users = np.array([1, 2], np.int32)
    a = np.array([[3, 9, 1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7, 8, 9]], np.int32)
    mask = np.array([[True] * 8, [False] * 5 + [True] * 3])
    b = a.copy()
    b[0, :3] = [11, 12, 13]  # older than the last L = 5 items: ignored
    s_a = task.score(state.params, users, a, mask)
    np.testing.assert_array_equal(s_a, task.score(state.params, users, b, mask))
    assert not np.allclose(s_a, task.score(state.params, users[::-1], a, mask))
    narrow = task.score(state.params, users, a[:, -3:], mask[:, -3:])  # padded up to L
    np.testing.assert_allclose(narrow[1], s_a[1], rtol=1e-6)


def _shared_samples(state, rng, n_sample):
    """The step's shared negatives, drawn as the step draws them (its key, fold_in 1)."""
    key = jax.random.fold_in(jax.random.fold_in(rng, state.step), 1)
    cdf = np.asarray(state.sample_cdf, np.float64)
    u = np.asarray(jax.random.uniform(key, (n_sample,)), np.float64) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


@pytest.mark.parametrize(
    "loss,tied",
    [("bce", False), ("softmax", False), ("bce", True), ("sampled-softmax", False)],
)
def test_loss_matches_numpy_reference(loss, tied):
    """The step's loss from the model's own full scores: the paper's BCE, the softmax, or
    the sampled softmax over shared negatives with logQ and accidental hits left out."""
    extra = ["model.caser.dropout=0", f"model.caser.loss={loss}", f"model.caser.tied={tied}"]
    extra += ["loss.n_sample=25", "loss.logq=1.0", "loss.sample_alpha=0.5"]
    task, state, batches, split = _setup(extra)
    assert ("W2" in state.params) != tied
    b = batches[-1]  # the epoch's last batch: may carry padding rows
    logits = np.asarray(task.score(state.params, b["users"], b["ids"], b["mask"]), np.float64)
    t_mask = b["target_mask"] & b["valid"][:, None]
    pos = np.take_along_axis(logits, b["targets"], axis=1)[t_mask]
    if loss == "bce":
        assert b["negatives"].shape[1] == 3 * b["targets"].shape[1]
        neg = np.take_along_axis(logits, b["negatives"], axis=1)[b["valid"]]
        want = np.log1p(np.exp(-pos)).mean() + np.log1p(np.exp(neg)).mean()
    elif loss == "softmax":
        assert b["negatives"].shape[1] == 0  # no negatives drawn for the softmax
        lse = np.log(np.exp(logits).sum(1, keepdims=True))
        want = (lse - np.take_along_axis(logits, b["targets"], axis=1))[t_mask].mean()
    else:
        samples = _shared_samples(state, jax.random.key(0), 25)
        rows = [split.train.row(u)[1:] for u in range(split.train.num_rows)]
        counts = np.bincount(np.concatenate(rows), minlength=split.num_items)  # as targets
        log_q = 0.5 * np.log(np.maximum(counts, 1))
        terms = []
        for r, t in np.argwhere(t_mask):
            target = b["targets"][r, t]
            keep = samples != target  # an accidental hit is left out of the denominator
            cols = np.concatenate([[target], samples[keep]])
            z = logits[r, cols] - log_q[cols]
            terms.append(np.log(np.exp(z).sum()) - z[0])
        want = np.mean(terms)
        assert len(set(samples.tolist())) > 5
    _, m = jax.jit(task.train_step)(state, b, jax.random.key(0))
    np.testing.assert_allclose(float(m["loss"]), want, rtol=1e-5)


def test_training_lowers_loss_and_beats_popularity():
    # 200 items: rings long enough that the next item is rarely already in the history.
    extra = ["data.synthetic.num_users=200", "data.synthetic.num_items=200", "train.epochs=4",
             "train.batch_size=64", "optim.name=adam", "optim.learning_rate=0.01",
             "model.caser.embedding=16", "model.caser.dropout=0.2"]  # fmt: skip
    task, state, batches, split = _setup(extra)
    state, losses = _train(task, state, batches)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    kw = dict(ks=(10,), protocol="full", chunk_size=256)
    fn = functools.partial(jax.jit(task.score), state.params)
    model = evaluation.evaluate(fn, split, "test", **kw)
    pop = evaluation.evaluate(baselines.popularity(split, "test"), split, "test", **kw)
    assert model["ndcg@10"] > 2 * pop["ndcg@10"], (model, pop)


@pytest.mark.slow  # the same row-wise machinery: tests/test_gru4rec.py, test_nextitnet.py
def test_sparse_row_updates_equal_dense_updates():
    extra = ["optim.name=adagrad", "optim.learning_rate=0.05", "model.caser.dropout=0"]
    task_s, state_s, batches, _ = _setup([*extra, "optim.sparse=true"])
    task_d, state_d, _, _ = _setup([*extra, "optim.sparse=false"])
    assert set(state_s.table_slots) == {"E", "W2", "b2", "P"} and state_d.table_slots == {}
    state_s, loss_s = _train(task_s, state_s, batches, 6)
    state_d, loss_d = _train(task_d, state_d, batches, 6)
    np.testing.assert_allclose(loss_s, loss_d, rtol=2e-5)
    for k in state_d.params:
        np.testing.assert_allclose(state_s.params[k], state_d.params[k], rtol=2e-4, atol=2e-6)


def test_all_padding_batch_and_padded_rows_change_nothing():
    task, state, batches, _ = _setup(["optim.name=adam"])
    state, _ = _train(task, state, batches, 2)
    empty = {k: np.zeros_like(v) for k, v in batches[0].items()}
    new, m = jax.jit(task.train_step)(state, empty, jax.random.key(3))
    assert int(m["examples"]) == 0 and int(new.step) == int(state.step)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        assert np.array_equal(a, b)
    # A half-padded batch gives the same loss whatever the padded rows hold.
    half = dict(batches[0])
    half["valid"] = np.arange(16) < 8
    noisy = {k: v.copy() for k, v in half.items()}
    for k in ("ids", "targets", "negatives", "users"):
        noisy[k][8:] = 7
    step = jax.jit(task.train_step)
    _, m1 = step(state, half, jax.random.key(4))
    _, m2 = step(state, noisy, jax.random.key(4))
    assert float(m1["loss"]) == float(m2["loss"]) and int(m1["examples"]) == 8


def _run_on_mesh(task, batches, mesh):
    key = jax.random.key(0)
    shardings = sharding.logical_shardings(mesh, jax.eval_shape(task.init_state, key))
    state = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)), out_shardings=shardings)(key)
    traces = []

    def counted(*args):
        traces.append(1)
        return task.train_step(*args)

    step = jax.jit(counted, donate_argnums=0, out_shardings=(shardings, sharding.replicated(mesh)))
    losses = []
    for b in batches:
        old = state
        state, m = step(state, sharding.shard_batch(b, mesh, 0), jax.random.key(1))
        assert old.params["E"].is_deleted()  # donated: updated in place
        losses.append(float(m["loss"]))
    assert len(traces) == 1
    return losses, jax.tree.map(np.asarray, state.params)


@pytest.mark.slow  # ~30 s: Caser compiles slowly; sharding is checked for GRU4Rec, NextItNet, AE, GAN by default
def test_sharded_steps_match_one_device_traced_once():
    task, _, batches, _ = _setup(["optim.name=adam"])
    one = _run_on_mesh(task, batches[:3], sharding.make_mesh(1, 1, devices=jax.devices()[:1]))
    for shape in ((2, 4),):  # data and model axes at once; 8x1 and 1x8: tests/test_cli.py
        losses, params = _run_on_mesh(task, batches[:3], sharding.make_mesh(*shape))
        np.testing.assert_allclose(losses, one[0], rtol=1e-5)
        for k in params:
            np.testing.assert_allclose(params[k], one[1][k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # the CLI path is covered for every family by tests/test_export.py
def test_jaxrec_train_end_to_end(tmp_path, capsys):
    sets = [*SMALL, "train.epochs=1", "eval.chunk_size=64", "optim.name=adam"]
    args = ["train", "--workdir", str(tmp_path / "w")]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "caser" in out and "markov" in out and "sampled-100" in out


def test_tied_output_scores_against_the_input_table():
    """RecBole's form: φ_a(fc2 [z; P_u]) · E_i + b2_i, no W2."""
    model = Caser(num_items=30, num_users=4, length=3, embedding=6, tied=True, dropout=0.0)
    args = (jnp.array([1, 2]), jnp.array([[3, 4, 5], [0, 7, 9]]), jnp.ones((2, 3), bool))
    params = nn.meta.unbox(model.init(jax.random.key(0), *args)["params"])
    assert "W2" not in params and params["fc2"].shape == (12, 6)
    x = model.apply({"params": params}, *args)
    assert x.shape == (2, 6) and (np.asarray(x) >= 0).all()  # after φ_a = ReLU
    want = np.asarray(x) @ np.asarray(params["E"]).T + np.asarray(params["b2"])
    got = model.apply({"params": params}, x, method="score")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    cols = model.apply({"params": params}, x, jnp.array([[3, 8], [1, 2]]), method="score")
    np.testing.assert_allclose(cols, np.take_along_axis(want, np.array([[3, 8], [1, 2]]), 1),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    shared = model.apply({"params": params}, x, jnp.array([8, 3, 3]), method="score")
    np.testing.assert_allclose(shared, want[:, [8, 3, 3]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rate", ["dropout_embed", "dropout_user"])
def test_input_and_user_dropout_act_in_training_only_and_leave_the_conv_stream_alone(rate):
    """dropout_embed (window embeddings) / dropout_user (P_u) zero and rescale entries in
    training only; at rate 0 they draw no key, so the conv-output dropout masks are those of
    a model without them."""
    kw = dict(num_items=30, num_users=4, length=3, embedding=6, vertical_filters=0)
    args = (jnp.array([1, 2]), jnp.array([[3, 4, 5], [0, 7, 9]]), jnp.ones((2, 3), bool))
    plain = Caser(**kw, dropout=0.5)
    params = plain.init(jax.random.key(0), *args)["params"]
    rngs = {"dropout": jax.random.key(5)}
    a = plain.apply({"params": params}, *args, train=True, rngs=rngs)
    b = Caser(**kw, dropout=0.5, **{rate: 0.0}).apply(
        {"params": params}, *args, train=True, rngs=rngs
    )
    np.testing.assert_array_equal(a, b)
    only = Caser(**kw, dropout=0.0, **{rate: 0.5})
    evals = only.apply({"params": params}, *args)
    trained = [only.apply({"params": params}, *args, train=True, rngs={"dropout": k})
               for k in jax.random.split(jax.random.key(1), 2)]  # fmt: skip
    assert not np.allclose(trained[0], evals) and not np.allclose(trained[0], trained[1])
    user = np.asarray(trained[0])[:, 6:]  # [z; P_u]: the user half
    assert (user == 0).any() == (rate == "dropout_user")
    np.testing.assert_array_equal(only.apply({"params": params}, *args), evals)


def test_bad_loss_or_windows_is_a_config_error():
    with pytest.raises(ConfigError, match="model.caser.loss='ce'"):
        _setup(["model.caser.loss=ce"])
    with pytest.raises(ConfigError, match="sampled-softmax needs loss.n_sample"):
        _setup(["model.caser.loss=sampled-softmax", "loss.n_sample=0"])
    with pytest.raises(ConfigError, match="model.caser.windows='all'"):
        _setup(["model.caser.windows=all"])


def test_lazy_adam_tables_update_touched_rows_as_dense_adam_with_l2():
    """optim.tables lazy_adam: the first step moves exactly the rows the batch touches
    (inputs, targets, shared samples, users), each as dense Adam with L2 moves it; dense
    Adam's L2 moves every other row too, lazy Adam leaves them bit-identical."""
    common = ["model.caser.dropout=0", "model.caser.loss=sampled-softmax", "loss.n_sample=8",
              "optim.name=adam", "optim.learning_rate=0.01", "optim.weight_decay=0.01"]  # fmt: skip
    lazy = "optim.tables={E: lazy_adam, W2: lazy_adam, b2: lazy_adam, P: lazy_adam}"
    task_s, state_s, batches, _ = _setup([*common, lazy])
    task_d, state_d, _, _ = _setup([*common, "optim.sparse=false"])
    assert set(state_s.table_slots) == {"E", "W2", "b2", "P"} and state_d.table_slots == {}
    b, rng = batches[0], jax.random.key(3)
    samples = _shared_samples(state_s, rng, 8)
    touched = {
        "items": set(b["ids"][b["mask"]]) | set(b["targets"][b["target_mask"]]) | set(samples),
        "users": set(b["users"][b["valid"]]),
        # b2 starts at 0, so its L2 term is 0 too: only scored rows (targets, samples) move
        "scored": set(b["targets"][b["target_mask"]]) | set(samples),
    }
    before = jax.tree.map(np.asarray, state_s.params)
    new_s, _ = jax.jit(task_s.train_step)(state_s, b, rng)
    new_d, _ = jax.jit(task_d.train_step)(state_d, b, rng)
    for k, space in (("E", "items"), ("W2", "items"), ("b2", "scored"), ("P", "users")):
        s, d = np.asarray(new_s.params[k]), np.asarray(new_d.params[k])
        moved = np.flatnonzero((s != before[k]).reshape(len(s), -1).any(axis=1))
        assert set(moved.tolist()) == {int(i) for i in touched[space]}, k
        np.testing.assert_allclose(s[moved], d[moved], rtol=1e-5, atol=1e-7)
        still = np.setdiff1d(np.arange(len(s)), moved)
        if k != "b2":  # dense L2 moved the rows lazy Adam left alone
            assert len(still) and not np.allclose(d[still], before[k][still])
    for k in ("fc1", "conv_v", "conv_h1"):
        np.testing.assert_allclose(new_s.params[k], new_d.params[k], rtol=1e-5, atol=1e-7)


def test_bad_row_optimizer_tables_are_config_errors():
    with pytest.raises(ConfigError, match="list every item/user table"):
        _setup(["model.caser.loss=sampled-softmax", "optim.tables={E: lazy_adam}"])
    with pytest.raises(ConfigError, match="use one of adagrad, lazy_adam"):
        _setup(["model.caser.loss=sampled-softmax",
                "optim.tables={E: adam, W2: adam, b2: adam, P: adam}"])  # fmt: skip
    with pytest.raises(ConfigError, match="full softmax"):
        _setup(["model.caser.loss=softmax", "optim.tables={E: lazy_adam}"])
    tables = "optim.tables={E: lazy_adam, W2: lazy_adam, b2: lazy_adam, P: lazy_adam}"
    with pytest.raises(ConfigError, match="clip_norm"):  # was silently dense
        _setup(["model.caser.loss=sampled-softmax", tables, "optim.clip_norm=1.0"])
