"""NextItNet: causality, padding invariance, the block against numpy, both softmaxes, sharding."""

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
from jaxrec.models.dropout import dropout_scales
from jaxrec.models.nextitnet import NextItNet, causal_conv

SMALL = [
    "model.name=nextitnet",
    "model.nextitnet.embedding=16",
    "model.nextitnet.dilations=[1,2]",
    "model.nextitnet.max_length=12",
    "train.batch_size=16",
    "data.synthetic.num_users=64",
    "data.synthetic.num_items=40",
    "optim.name=adam",
    "optim.learning_rate=0.005",
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


def test_causal_conv_matches_numpy():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 7, 3)), rng.normal(size=(3, 3, 4)), rng.normal(size=4)
    got = causal_conv(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), dilation=2)
    want = np.zeros((2, 7, 4)) + b
    for t in range(7):
        for j in range(3):  # tap j reads position t - (k-1-j)·dilation
            s = t - (2 - j) * 2
            if s >= 0:
                want[:, t] += x[:, s] @ w[j]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _model_and_params():
    model = NextItNet(num_items=30, embedding=8, dilations=(1, 2, 4))
    ids = jnp.asarray(np.random.default_rng(1).integers(0, 30, (3, 10)), jnp.int32)
    mask = jnp.ones((3, 10), bool)
    return model, model.init(jax.random.key(0), ids, mask)["params"], ids, mask


def test_block_matches_numpy_and_future_items_do_not_leak():
    model, params, ids, mask = _model_and_params()
    h = model.apply({"params": params}, ids, mask)
    assert h.shape == (3, 10, 8)
    p = jax.tree.map(np.asarray, nn.meta.unbox(params))

    def ln(x, q):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-8) * q["scale"] + q["bias"]

    x = p["E"][np.asarray(ids)]
    for i, r in enumerate((1, 2, 4)):  # block (b): conv(r) LN ReLU conv(2r) LN ReLU + x
        q = p[f"block{i}"]
        y = np.maximum(ln(np.asarray(causal_conv(x, q["conv1"], q["conv1_bias"], r)), q["ln1"]), 0)
        y = np.maximum(
            ln(np.asarray(causal_conv(y, q["conv2"], q["conv2_bias"], 2 * r)), q["ln2"]), 0
        )
        x = x + y
    np.testing.assert_allclose(h, np.maximum(x, 0), rtol=1e-4, atol=1e-5)

    changed = ids.at[:, 6].set((ids[:, 6] + 1) % 30)  # change item 6: positions < 6 unchanged
    h2 = model.apply({"params": params}, changed, mask)
    np.testing.assert_array_equal(h2[:, :6], h[:, :6])
    assert not np.allclose(h2[:, 6:], h[:, 6:])


def test_dropout_scales_rate_scale_and_keys():
    s = np.asarray(dropout_scales(jax.random.key(0), (8, 64, 20, 33), 0.3))  # odd size
    assert s.shape == (8, 64, 20, 33)
    drop = round(0.3 * 65536)
    np.testing.assert_array_equal(np.unique(s), [0.0, np.float32(65536 / (65536 - drop))])
    # 337,920 cells: the dropped fraction within 5 standard errors of the rate, mean 1.
    assert abs((s == 0).mean() - drop / 65536) < 5 * np.sqrt(0.3 * 0.7 / s.size)
    assert abs(s.mean() - 1.0) < 0.01
    # Each block gets its own mask; another key, another mask; same key, same mask.
    assert (s[0] != s[1]).mean() > 0.3
    assert (s != np.asarray(dropout_scales(jax.random.key(1), s.shape, 0.3))).mean() > 0.3
    np.testing.assert_array_equal(s, dropout_scales(jax.random.key(0), s.shape, 0.3))


def test_dropout_only_in_training_and_on_every_block():
    model, params, ids, mask = _model_and_params()
    p, rngs = {"params": params}, {"dropout": jax.random.key(3)}
    h = model.apply(p, ids, mask)
    half = model.clone(dropout=0.5)
    np.testing.assert_array_equal(half.apply(p, ids, mask), h)  # eval: no dropout
    assert not np.allclose(half.apply(p, ids, mask, train=True, rngs=rngs), h)
    # Rate 1 drops every block's residual branch: what is left is relu(E[ids]).
    everything = model.clone(dropout=1.0).apply(p, ids, mask, train=True, rngs=rngs)
    E = np.asarray(nn.meta.unbox(params)["E"])
    np.testing.assert_allclose(everything, np.maximum(E[np.asarray(ids)], 0), rtol=1e-6)


def test_left_padding_does_not_change_the_output():
    model, params, ids, mask = _model_and_params()
    pad_ids = jnp.concatenate([jnp.full((3, 5), 7, jnp.int32), ids], axis=1)
    pad_mask = jnp.concatenate([jnp.zeros((3, 5), bool), mask], axis=1)
    h = model.apply({"params": params}, ids, mask)
    h_pad = model.apply({"params": params}, pad_ids, pad_mask)
    np.testing.assert_allclose(h_pad[:, 5:], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h_pad[:, :5], 0)


def test_full_softmax_trains_and_beats_popularity():
    extra = ["data.synthetic.num_users=200", "data.synthetic.num_items=200", "train.epochs=12",
             "loss.n_sample=0", "optim.learning_rate=0.02"]  # fmt: skip
    task, state, batches, split = _setup(extra)
    state, losses = _train(task, state, batches)
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    kw = dict(ks=(10,), protocol="full", chunk_size=256)
    model = evaluation.evaluate(
        functools.partial(jax.jit(task.score), state.params), split, "test", **kw
    )
    pop = evaluation.evaluate(baselines.popularity(split, "test"), split, "test", **kw)
    assert model["ndcg@10"] > 4 * pop["ndcg@10"], (model, pop)


@pytest.mark.parametrize(
    ("tied", "loss"), [(False, "cross-entropy"), (True, "cross-entropy"), (True, "bpr-max")]
)
def test_sampled_softmax_sparse_equals_dense_and_lowers_loss(tied, loss):
    extra = ["loss.n_sample=8", "loss.logq=1.0", "optim.name=adagrad", "optim.learning_rate=0.05",
             f"model.nextitnet.tied={tied}", f"loss.kind={loss}",
             "model.nextitnet.final_act=elu-0.5"]  # fmt: skip
    task_s, state_s, batches, _ = _setup([*extra, "optim.sparse=true", "train.epochs=4"])
    task_d, state_d, _, _ = _setup([*extra, "optim.sparse=false", "train.epochs=4"])
    tables = {"E", "b"} if tied else {"E", "W", "b"}
    assert set(state_s.table_slots) == tables == set(state_d.params) & {"E", "W", "b"}
    assert state_d.table_slots == {}
    step = jax.jit(task_s.train_step)
    before = float(step(state_s, batches[0], jax.random.key(1))[1]["loss"])
    state_s, loss_s = _train(task_s, state_s, batches)
    state_d, loss_d = _train(task_d, state_d, batches)
    np.testing.assert_allclose(loss_s, loss_d, rtol=1e-4)
    for k in tables:
        np.testing.assert_allclose(state_s.params[k], state_d.params[k], rtol=1e-3, atol=1e-5)
    # Same batch, same sampled negatives (the key folds in the step): the loss went down.
    after = float(step(state_s.replace(step=0), batches[0], jax.random.key(1))[1]["loss"])
    # (BPR-max starts near log 2 + its regulariser and falls more slowly on this tiny set.)
    assert after < (0.8 if loss == "cross-entropy" else 0.9) * before, (before, after)


def test_all_padding_batch_changes_nothing():
    task, state, batches, _ = _setup(["loss.n_sample=0"])
    state, _ = _train(task, state, batches, 2)
    empty = {k: np.zeros_like(v) for k, v in batches[0].items()}
    new, m = jax.jit(task.train_step)(state, empty, jax.random.key(3))
    assert int(m["examples"]) == 0 and int(new.step) == int(state.step)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        assert np.array_equal(a, b)


def test_sharded_steps_match_one_device_traced_once():
    task, _, batches, _ = _setup(["loss.n_sample=8"])
    key = jax.random.key(0)

    def run(mesh):
        shardings = sharding.logical_shardings(mesh, jax.eval_shape(task.init_state, key))
        init = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)), out_shardings=shardings)
        state, traces, losses = init(key), [], []

        def counted(*args):
            traces.append(1)
            return task.train_step(*args)

        out = (shardings, sharding.replicated(mesh))
        step = jax.jit(counted, donate_argnums=0, out_shardings=out)
        for b in batches[:3]:
            old = state
            state, m = step(state, sharding.shard_batch(b, mesh, 0), jax.random.key(1))
            assert old.params["E"].is_deleted()
            losses.append(float(m["loss"]))
        assert len(traces) == 1
        return losses, jax.tree.map(np.asarray, state.params)

    one = run(sharding.make_mesh(1, 1, devices=jax.devices()[:1]))
    for shape in ((2, 4),):  # data and model axes at once; 8x1 and 1x8: tests/test_cli.py
        losses, params = run(sharding.make_mesh(*shape))
        np.testing.assert_allclose(losses, one[0], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(one[1]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # the CLI path is covered for every family by tests/test_export.py
def test_jaxrec_train_end_to_end(tmp_path, capsys):
    sets = [*SMALL, "train.epochs=1", "eval.chunk_size=64", "loss.n_sample=0"]
    args = ["train", "--workdir", str(tmp_path / "w")]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "nextitnet" in out and "markov" in out and "sampled-100" in out


def test_tied_model_scores_against_its_input_table():
    model = NextItNet(num_items=30, embedding=8, dilations=(1, 2), tied=True)
    ids = jnp.array([[0, 3, 5, 7]]), jnp.array([[False, True, True, True]])
    params = nn.meta.unbox(model.init(jax.random.key(0), *ids)["params"])
    assert "W" not in params
    params["b"] = jax.random.normal(jax.random.key(1), (30,))
    h = model.apply({"params": params}, *ids)[:, -1]
    want = np.asarray(h) @ np.asarray(params["E"]).T + np.asarray(params["b"])
    got = model.apply({"params": params}, h, method="score")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    cols = model.apply({"params": params}, h, jnp.array([7]), method="score_targets")
    np.testing.assert_allclose(cols, want[:, 7], rtol=1e-5, atol=1e-6)


def test_linear_head_is_a_dense_layer_on_the_last_block_and_stays_causal():
    model, params, ids, mask = _model_and_params()
    linear = model.clone(head="linear")
    lp = linear.init(jax.random.key(0), ids, mask)["params"]
    relu_params = {k: v for k, v in lp.items() if k != "final"}  # same blocks, ReLU head
    raw = np.asarray(model.apply({"params": relu_params}, ids, mask, method=_last_block_output))
    x = np.asarray(model.apply({"params": relu_params}, ids, mask))
    np.testing.assert_allclose(x, np.maximum(raw, 0), rtol=1e-5, atol=1e-6)
    h = np.asarray(linear.apply({"params": lp}, ids, mask))
    f = jax.tree.map(np.asarray, nn.meta.unbox(lp["final"]))
    np.testing.assert_allclose(h, raw @ f["kernel"] + f["bias"], rtol=1e-4, atol=1e-5)
    assert (h < 0).any()  # unlike the ReLU head, it can point anywhere in the table's space
    changed = ids.at[:, 6].set((ids[:, 6] + 1) % 30)
    h2 = np.asarray(linear.apply({"params": lp}, changed, mask))
    np.testing.assert_array_equal(h2[:, :6], h[:, :6])
    pad_ids = jnp.concatenate([jnp.full((3, 4), 7, jnp.int32), ids], axis=1)
    pad_mask = jnp.concatenate([jnp.zeros((3, 4), bool), mask], axis=1)
    h_pad = np.asarray(linear.apply({"params": lp}, pad_ids, pad_mask))
    np.testing.assert_allclose(h_pad[:, 4:], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h_pad[:, :4], 0)


def _last_block_output(module, ids, mask):
    """The residual stack's output before the head (for the test above)."""
    x = jnp.where(mask[..., None], jnp.take(module.E, ids, axis=0), 0.0)
    for block in module.blocks:
        x = block(x, mask)
    return x


def test_bad_head_loss_or_final_act_is_a_config_error():
    with pytest.raises(ConfigError, match="model.nextitnet.head='gelu'"):
        _setup(["model.nextitnet.head=gelu"])
    with pytest.raises(ConfigError, match="bpr-max needs sampled negatives"):
        _setup(["loss.kind=bpr-max", "loss.n_sample=0"])
    with pytest.raises(ConfigError, match="use cross-entropy or bpr-max"):
        _setup(["loss.kind=top1-max", "loss.n_sample=8"])
    with pytest.raises(ConfigError, match="final_act='elu'"):
        _setup(["loss.kind=bpr-max", "loss.n_sample=8", "model.nextitnet.final_act=elu"])


def test_embedding_dropout_drops_whole_input_cells_in_training_only():
    model, params, ids, mask = _model_and_params()
    p, rngs = {"params": params}, {"dropout": jax.random.key(3)}
    h = model.apply(p, ids, mask)
    emb = model.clone(dropout_embed=0.5)
    np.testing.assert_array_equal(emb.apply(p, ids, mask), h)  # eval: no dropout
    # With every block's branch dropped what is left is relu(E[ids] · embedding dropout):
    # each cell is 0 or twice the embedding, about half of each.
    both = model.clone(dropout=1.0, dropout_embed=0.5)
    got = np.asarray(both.apply(p, ids, mask, train=True, rngs=rngs))
    E = np.maximum(np.asarray(nn.meta.unbox(params)["E"])[np.asarray(ids)], 0)
    live = E > 0
    kept = np.isclose(got, 2 * E, rtol=1e-6) & live
    dropped = (got == 0) & live
    np.testing.assert_array_equal(kept | dropped, live)
    assert 0.3 < dropped.sum() / live.sum() < 0.7


@pytest.mark.parametrize("n_sample", [0, 8])
def test_narrow_bucketed_batch_steps_as_the_full_width_batch(n_sample):
    """A length-bucketed batch gives the same loss and update as the same rows padded to
    max_length + 1: left padding is invisible to the model and the loss."""
    extra = ["model.nextitnet.length_buckets=[3,6]", f"loss.n_sample={n_sample}",
             "data.synthetic.mean_length=4"]  # fmt: skip
    task, state, batches, _ = _setup(extra)
    widths = [b["ids"].shape[1] for b in batches]
    assert min(widths) < 13 and set(widths) <= {4, 7, 13}
    b = next(b for b in batches if b["ids"].shape[1] < 13)
    pad = 13 - b["ids"].shape[1]
    wide = {**b, "ids": np.pad(b["ids"], ((0, 0), (pad, 0))),
            "mask": np.pad(b["mask"], ((0, 0), (pad, 0)))}  # fmt: skip
    step = jax.jit(task.train_step)
    s1, m1 = step(state, b, jax.random.key(2))
    s2, m2 = step(state, wide, jax.random.key(2))
    np.testing.assert_allclose(float(m1["loss"]), float(m2["loss"]), rtol=1e-5)
    assert int(m1["examples"]) == int(m2["examples"])
    for a, c in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params), strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)


def test_bucketed_loss_weighs_every_position_alike():
    """With length buckets the gradient is the batch's sum over positions ÷ a constant (the
    mean positions per batch), not its mean: with SGD the update is the mean-loss update
    scaled by (positions in the batch) ÷ constant; the reported loss is still the mean."""
    extra = ["optim.name=sgd", "optim.learning_rate=0.1", "loss.n_sample=8",
             "data.synthetic.mean_length=4"]  # fmt: skip
    task_b, state, batches, split = _setup([*extra, "model.nextitnet.length_buckets=[3,6]"])
    task_u, _, _, _ = _setup(extra)
    lengths = np.minimum(split.train.lengths, 13) - 1
    const = 16 * lengths[lengths >= 1].mean()
    b = batches[0]
    count = int((b["mask"][:, :-1] & b["mask"][:, 1:]).sum())
    s_b, m_b = jax.jit(task_b.train_step)(state, b, jax.random.key(2))
    s_u, m_u = jax.jit(task_u.train_step)(state, b, jax.random.key(2))
    np.testing.assert_allclose(float(m_b["loss"]), float(m_u["loss"]), rtol=1e-5)
    for k in ("E", "b"):
        d_b = np.asarray(s_b.params[k]) - np.asarray(state.params[k])
        d_u = np.asarray(s_u.params[k]) - np.asarray(state.params[k])
        np.testing.assert_allclose(d_b, d_u * count / const, rtol=2e-3, atol=1e-7)


def test_score_reads_narrow_histories_as_padded_ones():
    """Evaluation scores a trimmed [B, 3] history like the same items padded to max_length
    (12) and like a wider history whose older items fall outside the model's window."""
    task, state, _, _ = _setup()
    params = state.params
    rng = np.random.default_rng(0)
    users = np.arange(4, dtype=np.int32)
    ids = rng.integers(0, 40, (4, 20)).astype(np.int32)
    mask = np.ones((4, 20), bool)
    mask[0, :-2] = False  # one user with only 2 items
    score = jax.jit(task.score)
    narrow = score(params, users, ids[:, -3:], mask[:, -3:])
    pad = np.zeros((4, 9), np.int32)
    padded = score(params, users, np.c_[pad, ids[:, -3:]], np.c_[pad > 0, mask[:, -3:]])
    np.testing.assert_allclose(narrow, padded, rtol=1e-5, atol=1e-6)
    wide = score(params, users, ids, mask)  # 20 columns: the model reads the last 12
    np.testing.assert_allclose(wide, score(params, users, ids[:, -12:], mask[:, -12:]))
    assert not np.allclose(wide[1:], narrow[1:], atol=1e-4)  # longer histories do matter
