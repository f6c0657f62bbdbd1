"""losses.py against independent float64 numpy versions of the official GRU4Rec formulas.

The references follow hidasib/GRU4Rec(_PyTorch_Official) literally: the batch is *shrunk* to
its valid rows (the official iterator drops finished streams), `softmax_neg` zeroes the
diagonal, and 1e-24 is added before every log. A handful of jitted wrappers compute every
loss kind at once, so the file compiles a few programs instead of thousands of eager ops.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import losses
from jaxrec.errors import ConfigError

KINDS = ("cross-entropy", "bpr-max", "top1-max")
EPS = 1e-24
B, S = 8, 5  # the shape of every random case
ACTS = ("linear", "elu-1", "tanh")
# Tests compile a few small programs; skipping LLVM's optimisations halves their compile time.
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


@functools.partial(_jit, static_argnames=("final_act",))
def _all_kinds(logits, valid, log_q=None, col_items=None, bpreg=1.0, final_act="linear"):
    """{kind: (mean, sum)} of gru4rec_loss for every kind, one compiled program."""
    out = {}
    for kind in KINDS:
        kw = dict(kind=kind, bpreg=bpreg, log_q=log_q, col_items=col_items, final_act=final_act)
        out[kind] = (
            losses.gru4rec_loss(logits, valid, **kw),
            losses.gru4rec_loss(logits, valid, reduction="sum", **kw),
        )
    return out


@functools.partial(_jit, static_argnames=("acts",))
def _values_and_grads(logits, valid, log_q, acts=ACTS):
    """{(kind, act): (loss, d loss / d logits)} for every kind and the given final acts."""
    out = {}
    for kind in KINDS:
        for act in acts:

            def f(x, kind=kind, act=act):
                return losses.gru4rec_loss(x, valid, kind=kind, log_q=log_q, final_act=act)

            out[kind, act] = jax.value_and_grad(f)(logits)
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _official(O, valid, kind, bpreg=1.0):
    """Official loss on the shrunken batch: mean over valid rows of the per-row loss."""
    n, C = O.shape
    idx = np.flatnonzero(valid)
    O = O[np.ix_(idx, np.concatenate([idx, np.arange(n, C)]))].astype(np.float64)
    M = len(idx)
    t = np.diag(O)[:, None]
    if kind == "cross-entropy":
        X = np.exp(O - O.max(axis=1, keepdims=True))
        X = X / X.sum(axis=1, keepdims=True)
        per_row = -np.log(np.diag(X) + EPS)
    else:
        hm = 1.0 - np.eye(M, O.shape[1])
        Xh = O * hm
        e = np.exp(Xh - Xh.max(axis=1, keepdims=True)) * hm
        s = e / e.sum(axis=1, keepdims=True)
        if kind == "bpr-max":
            per_row = -np.log((_sigmoid(t - O) * s).sum(1) + EPS) + bpreg * (O**2 * s).sum(1)
        else:
            per_row = (s * (_sigmoid(O - t) + _sigmoid(O**2))).sum(1)
    return per_row.mean()


def _per_row_masked(O, valid, items, kind, bpreg=1.0):
    """Loop reference with duplicates of the target removed from each row's negatives."""
    n, C = O.shape
    out = []
    for i in np.flatnonzero(valid):
        negs = [j for j in range(C) if j != i and (j >= n or valid[j]) and items[j] != items[i]]
        r, neg = float(O[i, i]), O[i, negs].astype(np.float64)
        if kind == "cross-entropy":
            z = np.concatenate([[r], neg])
            p = np.exp(r - z.max()) / np.exp(z - z.max()).sum()
            out.append(-np.log(p + EPS))
            continue
        s = np.exp(neg - neg.max()) / np.exp(neg - neg.max()).sum()
        if kind == "bpr-max":
            out.append(-np.log((s * _sigmoid(r - neg)).sum() + EPS) + bpreg * (s * neg**2).sum())
        else:
            out.append((s * (_sigmoid(neg - r) + _sigmoid(neg**2))).sum())
    return np.mean(out)


def _case(seed, scale=3.0, n_items=6):
    rng = np.random.default_rng(seed)
    O = (rng.standard_normal((B, B + S)) * scale).astype(np.float32)
    valid = rng.random(B) < 0.7
    valid[rng.integers(B)] = True
    items = rng.integers(0, n_items, B + S)  # small catalogue: duplicate targets and samples
    return O, valid, items


def test_matches_official_with_padding_and_duplicate_targets():
    for seed in range(6):
        O, valid, items = _case(seed)
        assert len(np.unique(items[:B])) < B  # duplicates present; the default ignores them
        got = _all_kinds(O, valid, bpreg=0.7)
        for kind in KINDS:
            mean, total = got[kind]
            assert mean.dtype == jnp.float32
            want = _official(O, valid, kind, bpreg=0.7)
            np.testing.assert_allclose(float(mean), want, rtol=2e-5, err_msg=kind)
            np.testing.assert_allclose(float(total), want * valid.sum(), rtol=2e-5)


def test_duplicate_mask_option():
    for seed in range(6):
        O, valid, items = _case(seed)
        got = _all_kinds(O, valid, col_items=jnp.asarray(items), bpreg=1.3)
        for kind in KINDS:
            want = _per_row_masked(O, valid, items, kind, bpreg=1.3)
            np.testing.assert_allclose(float(got[kind][0]), want, rtol=2e-5, err_msg=kind)


def test_logq_matches_official():
    for seed in range(4):
        O, valid, items = _case(seed, n_items=30)
        rng = np.random.default_rng(100 + seed)
        counts = rng.integers(1, 500, 30).astype(np.float64)
        alpha, logq = 0.5, 1.0
        corr = losses.gru4rec_log_q(jnp.log(counts), jnp.asarray(items), B, alpha)
        got = _all_kinds(O, valid, log_q=logq * corr)
        # Official: O - logq * log(concat(P0[Y[:M]], P0[Y[M:]] ** alpha)), P0 = raw counts.
        P0 = np.concatenate([counts[items[:B]], counts[items[B:]] ** alpha])
        for kind in KINDS:
            want = _official(O - logq * np.log(P0)[None, :], valid, kind)
            np.testing.assert_allclose(float(got[kind][0]), want, rtol=2e-5, err_msg=kind)


@pytest.mark.parametrize(
    ("act", "f"),
    [
        ("elu-0.5", lambda x: np.where(x >= 0, x, 0.5 * (np.exp(x) - 1))),
        ("tanh", np.tanh),
    ],
)
def test_final_activation_before_the_loss(act, f):
    O, valid, _ = _case(5)
    got = _all_kinds(O, valid, bpreg=1.95, final_act=act)
    for kind in ("bpr-max", "top1-max"):
        want = _official(f(O.astype(np.float64)), valid, kind, bpreg=1.95)
        np.testing.assert_allclose(float(got[kind][0]), want, rtol=2e-5, err_msg=kind)
    x = jnp.linspace(-3, 3, 7)
    np.testing.assert_allclose(losses.final_activation("leaky-0.1")(x), np.where(x >= 0, x, x / 10))
    np.testing.assert_allclose(losses.final_activation("selu-2-0.5")(x), 2 * f_elu(x, 0.5))
    np.testing.assert_allclose(losses.final_activation("elu-0")(x), x)


def f_elu(x, a):
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, x, a * (np.exp(x) - 1))


def test_bf16_input_computes_in_float32():
    O, valid, _ = _case(3)
    ob = jnp.asarray(O, jnp.bfloat16)
    got = _all_kinds(ob, valid)["cross-entropy"][0]
    assert got.dtype == jnp.float32
    want = _official(np.asarray(ob.astype(jnp.float32)), valid, "cross-entropy")
    np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_padded_rows_and_columns_do_not_matter():
    O, valid, _ = _case(11)
    O2 = O.copy()
    O2[~valid] = np.nan  # garbage in padded rows
    O2[:, :B][:, ~valid] = -1e4  # and in the padded targets' columns
    a = _values_and_grads(jnp.asarray(O), valid, jnp.zeros(B + S))
    b = _values_and_grads(jnp.asarray(O2), valid, jnp.zeros(B + S))
    for key, (v, g) in b.items():
        np.testing.assert_allclose(float(v), float(a[key][0]), rtol=1e-6)
        assert np.all(np.asarray(g)[~valid] == 0.0)
        assert np.all(np.asarray(g)[:, :B][:, ~valid] == 0.0)


def test_extreme_logits_have_finite_values_and_gradients():
    rng = np.random.default_rng(7)
    O = rng.choice([-1e4, 1e4, 0.0, 3.0], size=(B, B + S)).astype(np.float32)
    O[0] = -1e4  # a row whose every score is far below zero (official softmax_neg: 0/0)
    O[1, 1] = 1e4
    valid = np.ones(B, bool)
    valid[3] = False
    for log_q in (jnp.zeros(B + S), jnp.asarray(rng.uniform(-20, 0, B + S), jnp.float32)):
        out = _values_and_grads(jnp.asarray(O), valid, log_q)
        for key, (v, g) in out.items():
            assert np.isfinite(float(v)), key
            assert np.all(np.isfinite(np.asarray(g))), key


def test_degenerate_batches():
    # No valid row: zero loss, zero gradient.
    out = _values_and_grads(jnp.ones((B, B + S)), jnp.zeros(B, bool), jnp.zeros(B + S))
    for v, g in out.values():
        assert float(v) == 0.0 and np.all(np.asarray(g) == 0.0)
    # One valid row and no samples: no negative, contributes 0 (official stops there).
    out = _values_and_grads(
        jnp.ones((2, 2)), jnp.array([True, False]), jnp.zeros(2), acts=("linear",)
    )
    for v, g in out.values():
        assert float(v) == 0.0 and np.all(np.isfinite(np.asarray(g)))


def test_hand_computed_cases():
    # Two rows, one sample, every score 0: softmax 1/3 each; σ(0) = 1/2, s_j = 1/2 each
    # (any bpreg: the scores are 0).
    got = _all_kinds(jnp.zeros((2, 3)), jnp.array([True, True]), bpreg=5.0)
    want = {"cross-entropy": math.log(3), "bpr-max": math.log(2), "top1-max": 1.0}
    for kind in KINDS:
        np.testing.assert_allclose(float(got[kind][0]), want[kind], rtol=1e-6, err_msg=kind)
    # Row 0: target score 1, one sample scoring 2. Row 1 is padding: its target column
    # (score 100 for row 0) must not be a negative, and its own row must not count.
    # σ(1) = 0.7310586, σ(4) = 0.9820138, log(1 + e) = 1.3132617.
    logits = jnp.array([[1.0, 100.0, 2.0], [5.0, 5.0, 5.0]])
    got = _all_kinds(logits, jnp.array([True, False]), bpreg=0.5)
    want = {
        "cross-entropy": 1.3132617,  # -log(e / (e + e²)) = log(1 + e)
        "bpr-max": 1.3132617 + 0.5 * 4.0,  # -log σ(1 - 2) + 0.5 · 2²
        "top1-max": 0.7310586 + 0.9820138,  # σ(2 - 1) + σ(2²)
    }
    for kind in KINDS:
        np.testing.assert_allclose(float(got[kind][0]), want[kind], rtol=1e-6, err_msg=kind)


_sampled = _jit(losses.sampled_softmax_ce, static_argnames=("eps", "reduction"))
_full = _jit(losses.full_softmax_ce)
_bpr = _jit(losses.bpr)


def test_hand_generic_helpers():
    # -log(1 / (1 + 3)) with logits [0, log 3], label 0.
    got = _sampled(jnp.array([[0.0, math.log(3.0)]]), jnp.array([0]))
    np.testing.assert_allclose(float(got), math.log(4.0), rtol=1e-6)
    # BPR: mean(softplus(0 - 1), softplus(1 - 1)).
    got = _bpr(jnp.array([1.0]), jnp.array([[0.0, 1.0]]))
    np.testing.assert_allclose(float(got), (0.3132617 + math.log(2.0)) / 2, rtol=1e-6)


def test_sampled_and_full_softmax_against_numpy():
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n, C = 5, 9
        x = (rng.standard_normal((n, C)) * 4).astype(np.float32)
        labels = rng.integers(0, C, n)
        valid = np.array([True, True, False, True, True])
        col_mask = rng.random((n, C)) < 0.6
        lq = rng.uniform(-5, 0, C).astype(np.float32)
        got = _sampled(x, labels, valid=valid, log_q=lq, col_mask=col_mask, eps=EPS)
        want = []
        for i in np.flatnonzero(valid):
            cols = [j for j in range(C) if col_mask[i, j] or j == labels[i]]
            z = x[i, cols].astype(np.float64) - lq[cols]
            p = np.exp(x[i, labels[i]] - lq[labels[i]] - z.max()) / np.exp(z - z.max()).sum()
            want.append(-np.log(p + EPS))
        np.testing.assert_allclose(float(got), np.mean(want), rtol=2e-5)

        got = _full(x, labels, valid)
        z = x.astype(np.float64)
        logp = z - z.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        np.testing.assert_allclose(float(got), -logp[np.arange(n), labels][valid].mean(), rtol=2e-5)


def test_shared_negatives_equals_concatenated_sampled_softmax():
    """NextItNet's loss without concatenations: value and gradients equal the sampled
    softmax over [target, negatives] with label 0, log_q and the accidental-hit mask."""
    rng = np.random.default_rng(0)
    n, S = 7, 6
    pos = (rng.standard_normal(n) * 3).astype(np.float32)
    neg = (rng.standard_normal((n, S)) * 3).astype(np.float32)
    lq_pos, lq_neg = (
        rng.uniform(-5, 0, n).astype(np.float32),
        rng.uniform(-5, 0, S).astype(np.float32),
    )
    hit_free = rng.random((n, S)) < 0.7
    hit_free[1] = False  # a row whose every negative is a hit: only its target remains
    valid = np.array([True, True, False, True, True, True, False])
    neg[6] = np.nan  # a padded row's scores may be anything

    def shared(pos, neg):
        return losses.shared_negatives_ce(
            pos, neg, valid=valid, log_q_pos=lq_pos, log_q_neg=lq_neg, neg_mask=hit_free
        )

    def concatenated(pos, neg):
        logits = jnp.concatenate([pos[:, None], neg], axis=1)
        log_q = jnp.concatenate([lq_pos[:, None], jnp.broadcast_to(lq_neg, (n, S))], axis=1)
        col_mask = np.concatenate([np.ones((n, 1), bool), hit_free], axis=1)
        return losses.sampled_softmax_ce(
            logits, jnp.zeros(n, jnp.int32), valid=valid, log_q=log_q, col_mask=col_mask
        )

    got, g_got = _jit(jax.value_and_grad(shared, argnums=(0, 1)))(pos, neg)
    want, g_want = _jit(jax.value_and_grad(concatenated, argnums=(0, 1)))(pos, neg)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    for a, b in zip(g_got, g_want, strict=True):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    # Row 1 has only its target in the denominator: it adds -log 1 = 0 to the mean.
    z = [np.concatenate([[pos[i] - lq_pos[i]], (neg[i] - lq_neg)[hit_free[i]]]) for i in range(n)]
    per_row = [np.log(np.exp(r.astype(np.float64)).sum()) - r[0] for r in z]
    np.testing.assert_allclose(float(got), np.mean(np.array(per_row)[valid]), rtol=1e-6)


def test_grouped_shared_negatives_equal_the_per_target_form_with_hits_left_out():
    """Caser's T targets per row sharing the row's negatives: value and gradients (through
    the row vectors and the item table) equal `shared_negatives_ce` on the repeated scores
    with the hit mask, including repeated hits and a target that dominates its row."""
    rng = np.random.default_rng(1)
    N, T, S, d, I = 5, 3, 9, 4, 12
    x = rng.standard_normal((N, d)).astype(np.float32)
    W = rng.standard_normal((I, d)).astype(np.float32)
    targets = rng.integers(0, I, (N, T)).astype(np.int32)
    samples = np.concatenate([targets[0, :1], targets[0, :1], targets[2, 1:2],
                              rng.integers(0, I, S - 3)]).astype(np.int32)  # fmt: skip
    x[3] = W[targets[3, 0]] * 20.0  # row 3's first target dominates everything
    valid = np.ones((N, T), bool)
    valid[4, 1:] = False
    lq = rng.uniform(-3, 0, I).astype(np.float32)

    def grouped(x, W):
        pos = jnp.einsum("nd,ntd->nt", x, W[targets])
        hits = losses.sample_hits(jnp.asarray(samples), jnp.asarray(targets))
        return losses.grouped_shared_negatives_ce(
            pos, x @ W[samples].T, valid=valid, hits=hits, log_q_pos=lq[targets],
            log_q_neg=lq[samples],
        )  # fmt: skip

    def per_target(x, W):
        xr = jnp.repeat(x, T, axis=0)
        return losses.shared_negatives_ce(
            jnp.einsum("nd,nd->n", xr, W[targets.reshape(-1)]), xr @ W[samples].T,
            valid=valid.reshape(-1), log_q_pos=lq[targets.reshape(-1)],
            log_q_neg=lq[samples], neg_mask=samples[None, :] != targets.reshape(-1, 1),
        )  # fmt: skip

    hits = np.asarray(losses.sample_hits(jnp.asarray(samples), jnp.asarray(targets)))
    assert hits[0, 0] >= 2 and hits[2, 1] >= 1
    np.testing.assert_array_equal(hits, (samples[None, None] == targets[..., None]).sum(-1))
    got, g_got = _jit(jax.value_and_grad(grouped, argnums=(0, 1)))(x, W)
    want, g_want = _jit(jax.value_and_grad(per_target, argnums=(0, 1)))(x, W)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    for a, b in zip(g_got, g_want, strict=True):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_shared_negatives_bpr_max_against_numpy():
    """BPR-max over shared negatives: the formula in float64, hits and padded rows left out,
    a row with no negative left adding 0, gradients finite."""
    rng = np.random.default_rng(1)
    n, S = 6, 5
    pos = (rng.standard_normal(n) * 2).astype(np.float32)
    neg = (rng.standard_normal((n, S)) * 2).astype(np.float32)
    keep = rng.random((n, S)) < 0.7
    keep[0, 0] = True
    keep[2] = False  # every negative a hit
    valid = np.array([True, True, True, False, True, True])
    neg[3] = np.nan

    def loss(pos, neg):
        return losses.shared_negatives_bpr_max(pos, neg, valid=valid, neg_mask=keep, bpreg=0.5)

    got, grads = _jit(jax.value_and_grad(loss, argnums=(0, 1)))(pos, neg)
    per_row = []
    for i in np.flatnonzero(valid):
        r = neg[i][keep[i]].astype(np.float64)
        if r.size == 0:
            per_row.append(0.0)
            continue
        s = np.exp(r - r.max()) / np.exp(r - r.max()).sum()
        gain = (s * _sigmoid(pos[i] - r)).sum()
        per_row.append(-np.log(gain + 1e-24) + 0.5 * (s * r**2).sum())
    np.testing.assert_allclose(float(got), np.mean(per_row), rtol=1e-5)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert not np.asarray(grads[1])[3].any() and not np.asarray(grads[1])[~keep].any()


def test_bpr_against_numpy_and_extremes():
    rng = np.random.default_rng(0)
    pos = rng.standard_normal(6).astype(np.float32)
    neg = rng.standard_normal((6, 4)).astype(np.float32)
    mask = rng.random((6, 4)) < 0.7
    d = (pos[:, None] - neg).astype(np.float64)
    np.testing.assert_allclose(
        float(_bpr(pos, neg, mask)), -np.log(_sigmoid(d))[mask].mean(), rtol=2e-5
    )
    np.testing.assert_allclose(
        float(_bpr(pos, neg[:, 0])), -np.log(_sigmoid(d[:, 0])).mean(), rtol=2e-5
    )
    v, g = _jit(jax.value_and_grad(lambda p: losses.bpr(p, -p)))(jnp.array([1e4, -1e4]))
    assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g)))


def test_bad_arguments_raise_config_errors():
    z, ok = jnp.zeros((2, 3)), jnp.ones(2, bool)
    with pytest.raises(ConfigError, match="bpr-max"):
        losses.gru4rec_loss(z, ok, kind="top1")
    with pytest.raises(ConfigError, match="reduction"):
        losses.gru4rec_loss(z, ok, kind="bpr-max", reduction="x")
    with pytest.raises(ConfigError, match="final_act"):
        losses.gru4rec_loss(z, ok, kind="bpr-max", final_act="softmax")
    with pytest.raises(ConfigError, match="final_act"):
        losses.final_activation("elu-x")


def test_gan_losses_against_hand_numbers():
    # sigmoid BCE with a constant label: softplus(-x) for 1, softplus(x) for 0.
    x = jnp.array([0.0, 2.0, -1.0])
    np.testing.assert_allclose(losses.sigmoid_bce(x, 1.0), np.log1p(np.exp(-np.array([0, 2, -1]))))
    np.testing.assert_allclose(
        losses.sigmoid_bce(x, 0.0), [math.log(2), math.log1p(math.exp(2)), math.log1p(math.e**-1)],
        rtol=1e-6,
    )  # fmt: skip
    # tf.nn.l2_loss summed over a tree: (1 + 4 + 9 + 16) / 2.
    assert float(losses.l2_half({"a": jnp.array([1.0, 2.0]), "b": jnp.array([[3.0, 4.0]])})) == 15
    # ZR: Σ y² over the sampled entries only.
    y = jnp.array([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]])
    zr = jnp.array([[True, True, False], [False, False, True]])
    np.testing.assert_allclose(losses.cfgan_zr_penalty(y, zr), [5.0, 0.25])
    # IRGAN: reward 2(σ(x) - 1/2) = tanh(x / 2); policy gradient = -mean(log p · r) over samples.
    np.testing.assert_allclose(losses.irgan_reward(x), np.tanh(np.array([0, 2, -1]) / 2), rtol=1e-6)
    log_p = jnp.log(jnp.array([[0.5, 0.25, 0.125]]))
    r = jnp.array([[1.0, -1.0, 4.0]])
    got = losses.irgan_policy_gradient(log_p, r, jnp.array([[True, True, False]]))
    np.testing.assert_allclose(got, [-(math.log(0.5) - math.log(0.25)) / 2], rtol=1e-6)
    assert float(losses.irgan_policy_gradient(log_p, r, jnp.zeros((1, 3), bool))[0]) == 0.0


def test_autoencoder_losses_hand_computed():
    # Row 0: logits (0, ln 2, ln 3) → softmax (1, 2, 3) / 6; x = (1, 0, 1).
    logits = jnp.array([[0.0, math.log(2.0), math.log(3.0)], [5.0, 5.0, 5.0]])
    x = jnp.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    nll = losses.multinomial_nll(logits, x)
    np.testing.assert_allclose(
        nll, [-(math.log(1 / 6) + math.log(3 / 6)), -2 * math.log(1 / 3)], rtol=1e-6
    )
    # KL(N(mu, σ²) ‖ N(0, 1)) = ½(σ² + mu² - 1 - ln σ²), summed over dims.
    mu = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    logvar = jnp.array([[0.0, math.log(4.0)], [0.0, 0.0]])
    kl = losses.gaussian_kl(mu, logvar)
    np.testing.assert_allclose(kl, [0.5 * (4 + 1 - 1 - math.log(4)), 0.5 * (4 + 1)], rtol=1e-6)
    betas = [float(losses.kl_anneal(jnp.int32(s), 1000, 0.2)) for s in (0, 100, 199, 200, 10**6)]
    np.testing.assert_allclose(betas, [0.0, 0.1, 0.199, 0.2, 0.2], rtol=1e-6)
    m = losses.masked_row_mean(jnp.array([1.0, 3.0, 100.0]), jnp.array([True, True, False]))
    assert float(m) == 2.0
    assert float(losses.masked_row_mean(jnp.ones(2), jnp.zeros(2, bool))) == 0.0
