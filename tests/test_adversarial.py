"""The GAN task (CFGAN, IRGAN): masks, losses vs numpy, update counts, padding, meshes, trace."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from tiny import task_setup

from jaxrec import baselines, evaluation, losses, sharding
from jaxrec.config import CFGANConfig, IRGANConfig
from jaxrec.models.cfgan import CFGANDiscriminator, CFGANGenerator
from jaxrec.models.irgan import MF
from jaxrec.tasks import cfgan, irgan
from jaxrec.tasks.generate import generate

TINY = [
    "data.synthetic.num_users=64",
    "data.synthetic.num_items=40",
    "data.synthetic.mean_length=8",
    "data.split=temporal_ratio",
    "train.batch_size=16",
    "model.cfgan.generator=[16]",
    "model.cfgan.discriminator=[8]",
    "model.cfgan.g_batch_size=8",
    "model.cfgan.d_batch_size=16",
    "model.irgan.pretrain_epochs=1",
    "optim.name=adam",
    "optim.learning_rate=0.001",
]

# IRGAN's step (a lax.cond over pretraining and the game) compiles slowly on a 2-core CPU:
# its copies of the heavy end-to-end checks run with `-m slow`.
SLOW_IRGAN = pytest.param("irgan", marks=pytest.mark.slow)


def _setup(name, extra=()):
    return task_setup([f"model.name={name}", *TINY, *extra])


@functools.cache
def _cached(name, extra=()):
    return _setup(name, extra)


def _allclose_trees(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def test_zr_pm_masks_have_the_configured_size_and_skip_purchases():
    rng = np.random.default_rng(0)
    x = (rng.random((6, 50)) < 0.3).astype(np.float32)
    x[0] = 1.0  # a row with nothing unobserved selects nothing
    for ratio in (0.0, 0.2, 0.7, 1.0):
        sel = np.asarray(cfgan.sample_unobserved(jax.random.key(1), jnp.asarray(x), ratio))
        unobserved = (x == 0).sum(axis=1)
        np.testing.assert_array_equal(sel.sum(axis=1), np.floor(unobserved * ratio + 1e-4))
        assert not (sel & (x > 0)).any()
    a = cfgan.sample_unobserved(jax.random.key(1), jnp.asarray(x), 0.5)
    b = cfgan.sample_unobserved(jax.random.key(2), jnp.asarray(x), 0.5)
    assert not np.array_equal(a, b)  # the draw depends on the key


def test_shared_zr_pm_reuses_the_zr_entries_as_the_official_code():
    from jaxrec.config import CFGANConfig

    x = jnp.asarray((np.random.default_rng(0).random((5, 40)) < 0.3).astype(np.float32))
    for shared in (False, True):
        zr, pm = cfgan.cfgan_masks(jax.random.key(3), x, CFGANConfig(shared_zr_pm=shared))
        np.testing.assert_array_equal(np.maximum(x, pm), pm)  # purchases always shown
        assert np.array_equal(pm - x, zr) == shared


def test_reseeded_draws_pick_the_same_positions_as_the_official_reseeding():
    """Rows with as many unobserved entries pick the same positions in their unobserved
    lists (one replayed stream, as `np.random.seed(int(time.time()))` before each row);
    ZR and PM at equal ratios are one set, at different ratios nested; counts as always."""
    from jaxrec.config import CFGANConfig

    rng = np.random.default_rng(0)
    x = np.zeros((6, 30), np.float32)
    for r in range(6):  # rows 0-2: 10 purchases each, rows 3-5: 4
        x[r, rng.choice(30, 10 if r < 3 else 4, replace=False)] = 1
    sel = np.asarray(cfgan.sample_unobserved(jax.random.key(5), jnp.asarray(x), 0.5, True))

    def positions(r):
        return np.flatnonzero(sel[r][x[r] == 0])

    assert not (sel & (x > 0)).any()
    np.testing.assert_array_equal(sel.sum(axis=1), [10, 10, 10, 13, 13, 13])
    for group in ((0, 1, 2), (3, 4, 5)):
        for r in group[1:]:
            np.testing.assert_array_equal(positions(r), positions(group[0]))
    xs = jnp.asarray(x)
    zr, pm = cfgan.cfgan_masks(jax.random.key(3), xs, CFGANConfig(reseeded_draws=True))
    np.testing.assert_array_equal(pm - x, zr)
    cfg = CFGANConfig(reseeded_draws=True, pm_ratio=0.3)
    zr, pm = cfgan.cfgan_masks(jax.random.key(3), xs, cfg)
    assert ((pm - x) <= zr).all() and (pm - x).sum() < zr.sum()  # PM inside ZR
    indep = np.asarray(cfgan.sample_unobserved(jax.random.key(5), xs, 0.5))
    assert not all(
        np.array_equal(np.flatnonzero(indep[r][x[r] == 0]), np.flatnonzero(indep[0][x[0] == 0]))
        for r in (1, 2)
    )  # independent draws differ between such rows


def test_each_pass_reshuffles_every_row_into_the_sub_batches():
    rows = jnp.arange(12)
    passes = [cfgan.sub_batches(rows, 4, jax.random.key(k)) for k in range(2)]
    for mbs in passes:  # [3, 4]: every row exactly once per pass
        assert mbs.shape == (3, 4) and sorted(np.asarray(mbs).ravel()) == list(range(12))
    assert not np.array_equal(passes[0], passes[1])  # a fresh order per pass
    np.testing.assert_array_equal(cfgan.sub_batches(rows, 4), rows.reshape(3, 4))


def _np_mlp(params, x, out_act):
    layers = sorted(params, key=lambda k: int(k.split("_")[-1]))
    for j, name in enumerate(layers):
        x = x @ np.asarray(params[name]["kernel"]) + np.asarray(params[name]["bias"])
        if j < len(layers) - 1:
            x = 1 / (1 + np.exp(-x))
    return out_act(x)


def test_cfgan_losses_match_numpy():
    gen, dis = CFGANGenerator(12, (6, 5)), CFGANDiscriminator((4,))
    c = CFGANConfig(g_l2=0.01, d_l2=0.02, zr_coefficient=0.3)
    s = cfgan.CFGANStatic(gen, dis, None, None, 12, c)
    rng = np.random.default_rng(0)
    x = (rng.random((4, s.width)) < 0.2).astype(np.float32)
    pm = np.maximum(x, rng.random(x.shape) < 0.5).astype(np.float32)
    zr = ((rng.random(x.shape) < 0.5) & (x == 0)).astype(np.float32)
    valid = np.array([1, 1, 1, 0], np.float32)
    g = nn.meta.unbox(gen.init(jax.random.key(0), x)["params"])
    d = nn.meta.unbox(dis.init(jax.random.key(1), x, x)["params"])

    out = _np_mlp(g, x, lambda v: v)
    d_real = _np_mlp(d, np.concatenate([x, x], 1), lambda v: v)[:, 0]
    d_fake = _np_mlp(d, np.concatenate([x, out * pm], 1), lambda v: v)[:, 0]
    sp = lambda v: np.log1p(np.exp(v))  # noqa: E731
    l2 = lambda t: sum(0.5 * np.sum(np.square(w)) for w in jax.tree.leaves(t))  # noqa: E731
    want_d = np.sum((sp(-d_real) + sp(d_fake)) * valid) / 3 + 0.02 * l2(d)
    zr_term = s.c.zr_coefficient * np.sum(out**2 * zr, axis=1)
    want_g = np.sum((sp(-d_fake) + zr_term) * valid) / 3 + 0.01 * l2(g)
    got_d = cfgan.cfgan_d_loss(d, g, x, pm, valid, s)
    got_g = cfgan.cfgan_g_loss(g, d, x, pm, zr, valid, s)
    np.testing.assert_allclose(float(got_d), want_d, rtol=1e-5)
    np.testing.assert_allclose(float(got_g), want_g, rtol=1e-5)


def test_irgan_policy_gradient_matches_numpy():
    # One user, 4 items, logits l = p_u·Q + b; loss = -mean_s r_s log softmax(l)[i_s].
    # d loss / d b_j = -mean_s r_s (1[j = i_s] - p_j).
    s = irgan.IRGANStatic(MF(1, 4, 2), None, None, None, 0, IRGANConfig())
    params = {
        "user": jnp.array([[0.5, -1.0]]),
        "item": jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]),
        "bias": jnp.array([0.1, 0.0, -0.2, 0.3]),
    }
    samples = jnp.array([[0, 2, 2, 3]])
    reward = jnp.array([[0.5, -0.25, 1.0, 0.0]])
    smask = jnp.array([[True, True, True, False]])  # the last sample is padding
    loss, grad = jax.value_and_grad(irgan.irgan_g_loss)(
        params, jnp.array([0]), samples, reward, smask, jnp.array([True]), s
    )
    logits = np.array([0.5 + 0.1, -1.0, -0.5 - 0.2, -0.5 - 0.5 + 0.3])
    p = np.exp(logits) / np.exp(logits).sum()
    want = -(0.5 * np.log(p[0]) - 0.25 * np.log(p[2]) + 1.0 * np.log(p[2])) / 3
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    onehot = np.eye(4)[[0, 2, 2]]
    r = np.array([0.5, -0.25, 1.0])
    want_db = -np.mean(r[:, None] * (onehot - p[None, :]), axis=0)
    np.testing.assert_allclose(np.asarray(grad["bias"]), want_db, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(grad["user"][0]), np.asarray(params["item"]).T @ want_db, rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(losses.irgan_reward(jnp.array([0.0, 2.0]))),
        [0.0, 2 / (1 + np.exp(-2)) - 1],
        rtol=1e-6,
    )


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = jnp.array([[0.1, 0.0, 0.6, 0.3]])
    draws = np.asarray(irgan.inverse_cdf_sample(jax.random.key(0), probs, 20000))[0]
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    assert (draws != 1).all()


def _counting(tx):
    return optax.chain(tx, optax.scale_by_schedule(lambda count: 1.0))


@pytest.mark.slow  # ~30 s on 2 cores
def test_update_counts_per_train_step():
    # CFGAN: d_steps passes of B / d_batch updates, g_steps passes of B / g_batch updates.
    cfg, split, task, state, batches = _cached("cfgan")
    c = cfg.model.cfgan
    state, _ = jax.jit(task.train_step)(state, batches[0], jax.random.key(0))
    d_count = state.opt_state["discriminator"][0].count
    g_count = state.opt_state["generator"][0].count
    assert int(d_count) == c.d_steps * 16 // c.d_batch_size == 2
    assert int(g_count) == c.g_steps * 16 // c.g_batch_size == 8
    # IRGAN after pretraining: d_steps D and g_steps G updates per step.
    cfg, split, task, state, batches = _cached("irgan")
    s = task.train_step.keywords["s"]
    s = dataclasses.replace(s, g_tx=_counting(s.g_tx), d_tx=_counting(s.d_tx), pretrain_steps=0)
    opt = dict(state.opt_state)
    opt["generator"] = s.g_tx.init(state.params["generator"])
    opt["discriminator"] = s.d_tx.init(state.params["discriminator"])
    state = state.replace(opt_state=opt)
    state, m = jax.jit(functools.partial(irgan.irgan_train_step, s=s))(
        state, batches[0], jax.random.key(0)
    )
    assert int(state.opt_state["discriminator"][1].count) == cfg.model.irgan.d_steps == 2
    assert int(state.opt_state["generator"][1].count) == cfg.model.irgan.g_steps == 1
    assert float(m["d_loss"]) > 0


@pytest.mark.parametrize("name", ["cfgan", "irgan"])
def test_padding_rows_are_no_ops(name):
    cfg, split, task, state, batches = _cached(name)
    step = jax.jit(task.train_step)
    b = dict(batches[0])
    b["valid"] = b["valid"].copy()
    b["valid"][10:] = False
    b["mask"] = b["mask"] & b["valid"][:, None]
    users = b["users"][::-1].copy()  # padded rows point at other users and item 3
    users[:10] = b["users"][:10]
    garbage = dict(b, ids=np.where(b["valid"][:, None], b["ids"], 3), users=users)
    one, m1 = step(state, b, jax.random.key(0))
    two, m2 = step(state, garbage, jax.random.key(0))
    _allclose_trees(one.params, two.params, rtol=1e-6, atol=1e-7)
    assert int(m1["examples"]) == 10
    # An all-padding batch moves no parameter and no optimizer state.
    empty = dict(b, valid=np.zeros_like(b["valid"]), mask=np.zeros_like(b["mask"]))
    for st in (state, state.replace(step=jnp.int32(10**6))):  # pretraining and GAN phase
        new, _ = step(st, empty, jax.random.key(0))
        _allclose_trees(new.params, st.params, rtol=0, atol=0)
        _allclose_trees(new.opt_state, st.opt_state, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["cfgan", SLOW_IRGAN])
def test_sharded_meshes_agree(name):
    cfg, split, task, state0, batches = _cached(name)
    abstract = jax.eval_shape(task.init_state, jax.random.key(0))
    results = []
    for shape in ((8, 1), (2, 4)):  # data parallel vs rows split over `model`
        mesh = sharding.make_mesh(*shape, devices=jax.devices()[: shape[0] * shape[1]])
        shardings = sharding.logical_shardings(mesh, abstract)
        state = jax.device_put(state0, shardings)
        step = jax.jit(task.train_step, out_shardings=(shardings, sharding.replicated(mesh)))
        for b in batches[:2]:
            state, m = step(state, sharding.shard_batch(b, mesh), jax.random.key(2))
        results.append((jax.device_get(state.params), float(m["loss"])))
    for params, loss in results[1:]:
        _allclose_trees(params, results[0][0], rtol=2e-4, atol=2e-6)
        np.testing.assert_allclose(loss, results[0][1], rtol=2e-4)


@pytest.mark.parametrize("name", ["cfgan", SLOW_IRGAN])
def test_step_is_traced_once_and_donates_state(name):
    cfg, split, task, state, batches = _setup(name)
    traces = []

    def counted(*args):
        traces.append(1)
        return task.train_step(*args)

    mesh = sharding.make_mesh(-1, 1)
    shardings = sharding.logical_shardings(mesh, jax.eval_shape(task.init_state, jax.random.key(0)))
    state = jax.device_put(state, shardings)
    step = jax.jit(counted, donate_argnums=0, out_shardings=(shardings, sharding.replicated(mesh)))
    for b in batches[:2]:
        old = state
        state, _ = step(state, sharding.shard_batch(b, mesh), jax.random.key(0))
        assert jax.tree.leaves(old.params)[0].is_deleted()
    assert len(traces) == 1 and int(state.step) == 2


def _ndcg(cfg, split, task, params):
    fn = jax.jit(functools.partial(task.score, params))
    r = evaluation.evaluate(fn, split, "test", ks=(10,), max_history=64)
    return r["ndcg@10"]


@pytest.mark.slow  # quality runs: configs/cfgan_ml100k.yaml, irgan_ml100k.yaml
@pytest.mark.parametrize("name", ["cfgan", "irgan"])
def test_training_beats_the_untrained_generator_and_popularity(name):
    extra = ("model.cfgan.mode=user", "train.epochs=40", "optim.learning_rate=0.01")
    extra += ("model.cfgan.d_learning_rate=0.01", "model.cfgan.g_l2=0")
    if name == "irgan":
        extra = ("train.epochs=30", "model.irgan.pretrain_epochs=20")
    cfg, split, task, state, batches = _setup(name, extra)
    before = _ndcg(cfg, split, task, state.params)
    step = jax.jit(task.train_step)
    for b in batches:
        state, m = step(state, b, jax.random.key(5))
    assert np.isfinite(float(m["loss"])) and np.isfinite(float(m["d_loss"]))
    after = _ndcg(cfg, split, task, state.params)
    popularity = evaluation.evaluate(baselines.popularity(split), split, "test", ks=(10,))
    assert after > before + 0.02 and after > popularity["ndcg@10"] + 0.02, (before, after)


def test_generate_samples_virtual_rows():
    cfg, split, task, state, batches = _cached("irgan")
    users = jnp.arange(4, dtype=jnp.int32)
    ids, mask = jnp.zeros((4, 2), jnp.int32), jnp.zeros((4, 2), bool)
    top = generate(task.score, state.params, users, ids, mask, jax.random.key(0), n=5)
    scores = np.asarray(task.score(state.params, users, ids, mask))
    np.testing.assert_array_equal(np.asarray(top), np.argsort(-scores, axis=1)[:, :5])
    drawn = generate(
        task.score, state.params, users, ids, mask, jax.random.key(0), n=5, temperature=0.2
    )
    drawn = np.asarray(drawn)
    assert drawn.shape == (4, 5) and all(len(set(r)) == 5 for r in drawn)
    assert drawn.min() >= 0 and drawn.max() < split.num_items
    # Sampling follows softmax(scores / T): a tiny temperature gives the top items.
    cold = generate(
        task.score, state.params, users, ids, mask, jax.random.key(1), n=1, temperature=1e-6
    )
    np.testing.assert_array_equal(np.asarray(cold)[:, 0], np.asarray(top)[:, 0])


@pytest.mark.slow  # the CLI path is covered for every family by tests/test_export.py
@pytest.mark.parametrize("name", ["cfgan", "irgan"])
def test_jaxrec_train_end_to_end(name, tmp_path, capsys):
    from jaxrec.cli import main

    sets = [f"model.name={name}", *TINY, "train.epochs=2", "eval.protocols=[full]"]
    sets += ["eval.baselines=[popularity]", "eval.ks=[5,10]", "eval.chunk_size=64"]
    args = ["train", "--workdir", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert name in out and "popularity" in out
    import json

    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    mine = next(r for r in results if r["system"] == name)
    assert 0 <= mine["precision@5"] <= 1 and 0 <= mine["ndcg@10"] <= 1


@pytest.mark.slow  # ~35 s: trains a CFGAN through the CLI
def test_generate_cli_writes_rows_of_real_lengths_and_a_report(tmp_path, capsys):
    import csv
    import json

    from jaxrec.cli import main
    from jaxrec.synthesize import compare, generate_rows
    from jaxrec.workdir import open_trained

    args = ["train", "--workdir", str(tmp_path / "run")]
    for s in [
        "model.name=cfgan",
        *TINY,
        "train.epochs=1",
        "eval.protocols=[full]",
        "eval.baselines=[]",
    ]:
        args += ["--set", s]
    assert main(args) == 0
    out = tmp_path / "gen.csv"
    argv = ["generate", "--workdir", str(tmp_path / "run"), "--users", "50", "--out", str(out)]
    assert main(argv) == 0
    assert "popularity rank correlation" in capsys.readouterr().out
    rows: dict[str, list[str]] = {}
    with open(out) as f:
        for r in list(csv.DictReader(f)):
            rows.setdefault(r["user"], []).append(r["item"])
    assert len(rows) == 50 and all(len(set(v)) == len(v) for v in rows.values())
    report = json.loads(out.with_name("gen.csv.report.json").read_text())
    assert report["generated"]["events"] == sum(len(v) for v in rows.values())

    trained = open_trained(tmp_path / "run")
    run, best = trained.run, trained.params
    history, _ = run.split.stage("test")
    cond, fake = generate_rows(run, best, 50, seed=0)
    # Same seed → the file's rows; each as long as its conditioning user's real row.
    assert [run.data.item_vocab[r].tolist() for r in fake] == list(rows.values())
    assert [len(r) for r in fake] == history.lengths[cond].tolist()
    # Temperature 0: exactly the generator's top items for the condition.
    cond0, top = generate_rows(run, best, 5, seed=3, temperature=0.0)
    ids, mask = history.padded(cond0, int(history.lengths.max()))
    scores = np.asarray(run.task.score(best, cond0, ids, mask))
    for u, row, s in zip(cond0, top, scores, strict=True):
        want = np.argsort(-s, kind="stable")[: history.lengths[u]]
        assert set(row.tolist()) == set(want.tolist())
    # The report's numbers on a hand-made case.
    r = compare([np.array([0, 1]), np.array([0])], [np.array([0]), np.array([2])],
                [np.array([0, 1]), np.array([0])], num_items=4)  # fmt: skip
    assert r["real"]["coverage"] == 0.5 and r["generated"]["coverage"] == 0.5
    assert r["real"]["top10pct_share"] == 2 / 3 and r["generated"]["top10pct_share"] == 0.5
    assert r["mean_jaccard_with_condition"] == (0.5 + 0.0) / 2


def test_generate_refuses_a_non_gan_model_and_bad_counts():
    from types import SimpleNamespace

    from jaxrec.errors import ConfigError
    from jaxrec.synthesize import generate_rows

    def run(name):
        return SimpleNamespace(cfg=SimpleNamespace(model=SimpleNamespace(name=name)))

    with pytest.raises(ConfigError, match="needs a GAN workdir"):
        generate_rows(run("gru4rec"), None, 5)
    with pytest.raises(ConfigError, match="--users"):
        generate_rows(run("cfgan"), None, 0)
    with pytest.raises(ConfigError, match="--temperature"):
        generate_rows(run("cfgan"), None, 5, temperature=-1.0)
