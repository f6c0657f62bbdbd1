"""Losses, computed in float32 whatever the input dtype (DESIGN.md §3, Precision).

GRU4Rec losses follow Hidasi & Karatzoglou, "Recurrent Neural Networks with Top-k Gains for
Session-based Recommendations", CIKM 2018 (arXiv:1706.03847), as the official code computes
them (hidasib/GRU4Rec `gru4rec.py`: `cross_entropy`, `bpr_max`, `top1_max`, `softmax_neg`,
`model`; hidasib/GRU4Rec_PyTorch_Official `gru4rec_pytorch.py`: `xe_loss_with_softmax`,
`bpr_max_loss_with_elu`, `softmax_neg`). Shapes: B batch rows, S shared sampled negatives,
C = B + S score columns, I items.

Everything here is written in log space (log-softmax, log-sigmoid, logsumexp), which equals
the official formulas, epsilon included, but stays finite, gradients too, for logits of any
size; the official `softmax_neg` returns 0/0 when every score is far below zero.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrec.errors import ConfigError

GRU4REC_LOSSES = ("cross-entropy", "bpr-max", "top1-max")
_OFFICIAL_EPS = 1e-24  # added to probabilities before the log in every official loss


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def _row_mean(per_row: jax.Array, rows: jax.Array, reduction: str) -> jax.Array:
    """Sum or mean of `per_row` [B] over the True entries of `rows` [B]; 0 if there are none."""
    total = jnp.where(rows, per_row, 0.0).sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / jnp.maximum(rows.sum(), 1).astype(jnp.float32)
    raise ConfigError(f"reduction={reduction!r}: use 'mean' or 'sum'")


def _neg_log(log_p: jax.Array, eps: float) -> jax.Array:
    """-log(p + eps) from log p, exactly and without overflow: -logaddexp(log p, log eps)."""
    if eps <= 0:
        return -log_p
    return -jnp.logaddexp(log_p, jnp.log(jnp.float32(eps)))


def final_activation(name: str, kind: str = "cross-entropy") -> Callable[[jax.Array], jax.Array]:
    """The official `final_act` (gru4rec.py `set_final_activation`) applied before the loss.

    linear, relu, tanh, leaky-<a>, elu-<a>, selu-<lambda>-<alpha>. 'softmax' is accepted with
    cross-entropy only and is the identity here, because `gru4rec_loss` takes the softmax
    itself (official: final_act='softmax' then -log(diag + 1e-24)). The PyTorch port's
    `elu_param=a` is 'elu-<a>' (a = 0 there means linear).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> act = losses.final_activation("leaky-0.1")
        >>> print(act(jnp.array([-1.0, 0.0, 2.0])))
        [-0.1  0.   2. ]
    """
    if name == "linear" or (name == "softmax" and kind == "cross-entropy"):
        return lambda x: x
    if name == "relu":
        return jax.nn.relu
    if name == "tanh":
        return jnp.tanh
    head, _, rest = name.partition("-")
    try:
        params = [float(p) for p in rest.split("-")] if rest else []
    except ValueError:
        params = []
    if head == "elu" and len(params) == 1:
        a = params[0]
        return (lambda x: x) if a == 0 else (lambda x: jax.nn.elu(x, a))
    if head == "leaky" and len(params) == 1:
        return lambda x: jax.nn.leaky_relu(x, params[0])
    if head == "selu" and len(params) == 2:
        lmbd, alpha = params
        return lambda x: lmbd * jax.nn.elu(x, alpha)
    raise ConfigError(
        f"final_act={name!r}: use linear, relu, tanh, leaky-<a>, elu-<a>, selu-<l>-<a>"
        " (or softmax with the cross-entropy loss)"
    )


def gru4rec_log_q(
    log_counts: jax.Array, cols: jax.Array, num_targets: int, sample_alpha: float
) -> jax.Array:
    """The official logQ term per score column: float32 [C].

    log_counts: float32 [I] log of each item's training count; cols: int [C] the column items
    (B in-batch targets, then S samples). In-batch targets are drawn from the data, so
    q ∝ count; extra samples are drawn ∝ count^alpha. The official code subtracts
    `logq * log(concat(P0[Y[:M]], P0[Y[M:]] ** sample_alpha))` with P0 the raw counts, so
    the two groups keep their own normalisers (which do not cancel in the softmax).
    Pass `logq * gru4rec_log_q(...)` as `log_q` to `gru4rec_loss`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> log_counts = jnp.log(jnp.array([1.0, 2.0, 4.0, 8.0]))
        >>> # columns: two in-batch targets (items 3, 1), then one sample (item 2), alpha 0.5
        >>> print(jnp.round(losses.gru4rec_log_q(log_counts, jnp.array([3, 1, 2]), 2, 0.5), 4))
        [2.0794 0.6931 0.6931]
    """
    lc = _f32(log_counts)[cols]
    scale = jnp.where(jnp.arange(cols.shape[0]) < num_targets, 1.0, jnp.float32(sample_alpha))
    return lc * scale


def sampled_softmax_ce(
    logits: jax.Array,
    labels: jax.Array,
    *,
    valid: jax.Array | None = None,
    log_q: jax.Array | None = None,
    col_mask: jax.Array | None = None,
    eps: float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
    """Softmax cross-entropy over a candidate set: -log(softmax(logits - log_q)[label] + eps).

    logits [B, C]; labels int [B], the positive's column; valid bool [B] rows that count
    (default all); log_q broadcastable to [B, C], subtracted from the logits (logQ
    correction, Bengio & Senécal 2008; Yi et al. 2019); col_mask bool broadcastable to
    [B, C], the columns allowed in the denominator (the label column always is); eps: the
    official GRU4Rec adds 1e-24 to the probability. Returns float32 scalar: mean (or sum)
    over valid rows.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
        >>> print(jnp.round(losses.sampled_softmax_ce(logits, jnp.array([0, 2])), 4))
        0.7531
        >>> valid = jnp.array([True, False])  # the second row is padding
        >>> print(jnp.round(losses.sampled_softmax_ce(logits, jnp.array([0, 2]), valid=valid), 4))
        0.4076
    """
    x = _f32(logits)
    B, C = x.shape
    rows = jnp.ones((B,), bool) if valid is None else jnp.asarray(valid, bool)
    x = jnp.where(rows[:, None], x, 0.0)  # padded rows: finite (even if NaN) and gradient-free
    if log_q is not None:
        x = x - _f32(log_q)
    is_label = jnp.arange(C)[None, :] == jnp.asarray(labels)[:, None]
    keep = jnp.ones((B, C), bool)
    if col_mask is not None:
        keep = is_label | jnp.broadcast_to(jnp.asarray(col_mask, bool), (B, C))
    pos = jnp.take_along_axis(x, jnp.asarray(labels)[:, None], axis=1)[:, 0]
    log_p = pos - jax.nn.logsumexp(x, axis=1, where=keep)
    return _row_mean(_neg_log(log_p, eps), rows, reduction)


def shared_negatives_ce(
    pos: jax.Array,
    neg: jax.Array,
    *,
    valid: jax.Array,
    log_q_pos: jax.Array | float = 0.0,
    log_q_neg: jax.Array | float = 0.0,
    neg_mask: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Sampled softmax over [own target, S negatives shared by every row], logQ-corrected.

    The same value as `sampled_softmax_ce` on `concatenate([pos, neg])` with label 0, but
    the [N, 1 + S] logits, log_q and column mask are never built: the target column joins
    the log-sum-exp as a separate term. pos float [N] (each row's target score), neg float
    [N, S]; valid bool [N] rows that count; log_q_pos [N] and log_q_neg [S] (or scalars)
    are subtracted from the logits; neg_mask bool [N, S], False where a negative is left
    out of the row's denominator (an accidental hit of its target). Returns the float32
    mean (or, with reduction="sum", the sum) of -log p(target) over valid rows.

    The positive and negative terms stay separate: concatenating them into one [N, 1 + S]
    logits array cost a large share of NextItNet's step in copies and transposes.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> pos, neg = jnp.array([2.0, 0.0]), jnp.array([[1.0, 0.0], [0.0, 0.0]])
        >>> valid = jnp.array([True, True])
        >>> print(jnp.round(losses.shared_negatives_ce(pos, neg, valid=valid), 4))
        0.7531
        >>> # the same as a sampled softmax with the target in column 0:
        >>> logits = jnp.concatenate([pos[:, None], neg], axis=1)
        >>> print(jnp.round(losses.sampled_softmax_ce(logits, jnp.array([0, 0])), 4))
        0.7531
    """
    rows = jnp.asarray(valid, bool)
    p = jnp.where(rows, _f32(pos) - log_q_pos, 0.0)  # padded rows: finite, gradient-free
    n = _f32(neg) - log_q_neg
    keep = rows[:, None] if neg_mask is None else rows[:, None] & neg_mask
    n = jnp.where(keep, n, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.maximum(p, jnp.max(n, axis=-1)))
    lse = top + jnp.log(jnp.exp(p - top) + jnp.sum(jnp.exp(n - top[:, None]), axis=-1))
    return _row_mean(lse - p, rows, reduction)


def sample_hits(samples: jax.Array, targets: jax.Array) -> jax.Array:
    """How many of the shared samples int [S] equal each target: int32, targets' shape.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> print(losses.sample_hits(jnp.array([4, 7, 4]), jnp.array([[4, 5], [7, 1]])))
        [[2 0]
         [1 0]]
    """
    ordered = jnp.sort(samples)
    right = jnp.searchsorted(ordered, targets, side="right")
    return (right - jnp.searchsorted(ordered, targets, side="left")).astype(jnp.int32)


def grouped_shared_negatives_ce(
    pos: jax.Array,
    neg: jax.Array,
    *,
    valid: jax.Array,
    hits: jax.Array,
    log_q_pos: jax.Array | float = 0.0,
    log_q_neg: jax.Array | float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
    """`shared_negatives_ce` for T targets per row that share the row's negative scores.

    pos float [N, T] (target scores), neg float [N, S] (the row's scores of the S shared
    samples), valid bool [N, T], hits int [N, T] (`sample_hits`: samples equal to the
    target), log_q_pos [N, T] and log_q_neg [S] (or scalars). The same value and gradient as
    `shared_negatives_ce` on the [N·T, S] repeat of neg with hits left out of the
    denominator, without building it: Σ over the kept samples = Σ over all − hits·e^{pos},
    because a hit's logit is the target's own (same row vector, same item, same logQ), so
    their gradients cancel too. The denominator is floored at e^{pos}, what it holds at
    least, so rounding in that subtraction cannot reach log(0). Caser's window step (Games,
    B 512, T 3, S 4,096) no longer builds six [1,536, 4,096] arrays.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> samples, targets = jnp.array([4, 5, 6]), jnp.array([[4, 9]])  # sample 0 hits target 4
        >>> hits = losses.sample_hits(samples, targets)
        >>> pos, neg = jnp.array([[2.0, 1.0]]), jnp.array([[2.0, 0.0, 2.0]])
        >>> loss = losses.grouped_shared_negatives_ce(
        ...     pos, neg, valid=jnp.array([[True, True]]), hits=hits)
        >>> print(f"{loss:.4f}")  # (log(2e² + 1) - 2 + log(2e² + 1 + e) - 1) / 2
        1.3381
    """
    rows = jnp.asarray(valid, bool)
    p = jnp.where(rows, _f32(pos) - log_q_pos, 0.0)  # padded entries: finite, gradient-free
    n = _f32(neg) - log_q_neg
    top = jax.lax.stop_gradient(jnp.maximum(p.max(axis=1), n.max(axis=1)))[:, None]
    total = jnp.exp(n - top).sum(axis=1, keepdims=True)  # [N, 1]: once per row
    e_pos = jnp.exp(p - top)
    denom = jnp.maximum(total + (1 - hits).astype(jnp.float32) * e_pos, e_pos)
    lse = top + jnp.log(denom)
    return _row_mean((lse - p).reshape(-1), rows.reshape(-1), reduction)


def shared_negatives_bpr_max(
    pos: jax.Array,
    neg: jax.Array,
    *,
    valid: jax.Array,
    neg_mask: jax.Array | None = None,
    bpreg: float = 1.0,
    eps: float = _OFFICIAL_EPS,
    reduction: str = "mean",
) -> jax.Array:
    """BPR-max (Hidasi & Karatzoglou, CIKM 2018) of each row's target against S negatives
    shared by every row: -log(Σ_j s_j σ(r_i - r_j) + eps) + bpreg · Σ_j s_j r_j², s the
    softmax of the row's negative scores.

    pos float [N] (each row's target score, after any final activation), neg float [N, S];
    valid bool [N] rows that count; neg_mask bool [N, S], False where a negative is left out
    of the row (an accidental hit of its target). Returns the float32 mean (or sum) over
    valid rows (0 when none); a row left with no negative adds 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> pos, neg = jnp.array([2.0, 0.0]), jnp.array([[1.0, 0.0], [0.0, 0.0]])
        >>> loss = losses.shared_negatives_bpr_max(pos, neg, valid=jnp.array([True, True]), bpreg=0.0)
        >>> print(jnp.round(loss, 4))
        0.4764
    """
    rows = jnp.asarray(valid, bool)
    p = jnp.where(rows, _f32(pos), 0.0)  # padded rows: finite, gradient-free
    n = jnp.where(rows[:, None], _f32(neg), 0.0)
    keep = rows[:, None] if neg_mask is None else rows[:, None] & neg_mask
    has_neg = keep.any(axis=1)
    per_row = _bpr_max_rows(n, p, keep | ~has_neg[:, None], bpreg, eps)
    return _row_mean(jnp.where(has_neg, per_row, 0.0), rows, reduction)


def full_softmax_ce(
    logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, reduction: str = "mean"
) -> jax.Array:
    """Cross-entropy of a softmax over the whole catalogue.

    logits [B, I]; labels int [B]; mask bool [B] rows that count. Returns the float32 mean
    (or sum) over counted rows (0 when none).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
        >>> print(jnp.round(losses.full_softmax_ce(logits, jnp.array([0, 2])), 4))
        0.7531
    """
    return sampled_softmax_ce(logits, labels, valid=mask, reduction=reduction)


def bpr(pos: jax.Array, neg: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """BPR (Rendle et al., UAI 2009): mean of -log σ(pos - neg) = softplus(neg - pos).

    pos [B]; neg [B] or [B, S]; mask bool broadcastable to neg's shape, the pairs that count
    (default all). Returns the float32 mean over counted pairs (0 when none).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> # softplus(0 - 2) and softplus(0 - 0) = log 2, averaged
        >>> print(jnp.round(losses.bpr(jnp.array([2.0, 0.0]), jnp.array([0.0, 0.0])), 4))
        0.41
    """
    p, n = _f32(pos), _f32(neg)
    if n.ndim == 2:
        p = p[:, None]
    m = jnp.ones(n.shape, bool) if mask is None else jnp.broadcast_to(jnp.asarray(mask), n.shape)
    d = jnp.where(m, n - p, 0.0)
    return jnp.where(m, jax.nn.softplus(d), 0.0).sum() / jnp.maximum(m.sum(), 1)


def _neg_softmax(x: jax.Array, neg: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(log s, s) of the softmax over each row's negative columns (official `softmax_neg`)."""
    log_s = x - jax.nn.logsumexp(x, axis=1, keepdims=True, where=neg)
    log_s = jnp.where(neg, log_s, -jnp.inf)
    return log_s, jnp.exp(log_s)


def _bpr_max_rows(x, pos, neg, bpreg, eps):
    """Per row: -log(Σ_j s_j σ(r_i - r_j) + eps) + bpreg Σ_j s_j r_j², s = softmax over negs."""
    log_s, s = _neg_softmax(x, neg)
    log_gain = jax.nn.logsumexp(log_s + jax.nn.log_sigmoid(pos[:, None] - x), axis=1, where=neg)
    reg = (s * jnp.where(neg, x, 0.0) ** 2).sum(axis=1)
    return _neg_log(log_gain, eps) + bpreg * reg


def _top1_max_rows(x, pos, neg):
    """Per row: Σ_j s_j (σ(r_j - r_i) + σ(r_j²)), s = softmax over the negatives."""
    _, s = _neg_softmax(x, neg)
    xn = jnp.where(neg, x, 0.0)
    return (s * (jax.nn.sigmoid(xn - pos[:, None]) + jax.nn.sigmoid(xn**2))).sum(axis=1)


def gru4rec_loss(
    logits: jax.Array,
    valid_rows: jax.Array,
    *,
    kind: str,
    bpreg: float = 1.0,
    log_q: jax.Array | None = None,
    final_act: str = "linear",
    col_items: jax.Array | None = None,
    eps: float = _OFFICIAL_EPS,
    reduction: str = "mean",
) -> jax.Array:
    """GRU4Rec loss over session-parallel scores with shared negatives (CIKM 2018, §3).

    logits [B, C], C = B + S: column j < B scores row j's target item (the diagonal holds
    the positives, every other row's target is an in-batch negative), the last S columns
    score S extra items sampled ∝ popularity^alpha and shared by the batch.
    valid_rows bool [B]: padded rows (streams out of sessions) add no loss and their target
    columns serve as nobody's negative, so the result equals the official code on the
    shrunken batch of the valid rows alone.

    Order, as in the official `model()`: logits - log_q, then `final_act`
    (see `final_activation`), then the loss:
      cross-entropy: -log(softmax(r)_i + eps) over the target and all negatives;
      bpr-max:  -log(Σ_j s_j σ(r_i - r_j) + eps) + bpreg · Σ_j s_j r_j²;
      top1-max: Σ_j s_j (σ(r_j - r_i) + σ(r_j²));
    s_j = softmax of the scores over row i's negatives (the diagonal excluded).

    log_q: broadcastable to [B, C] (usually [C]), already scaled by the `logq` coefficient,
    e.g. `logq * gru4rec_log_q(...)`; the Theano code applies it with every loss, the
    PyTorch port only with cross-entropy. col_items int [C], optional: when given, columns
    holding the same item as row i's target (another row's identical target, or a sample
    that drew it) are dropped from row i's negatives. The official code does not do this
    (such columns count as negatives), so the default None matches it.
    eps: 1e-24, the official constant. reduction: 'mean' over valid rows (0 when there are
    none), or 'sum'; the official per-step loss is sum / batch_size. Rows left with no
    negative (one valid row and S = 0) contribute 0. Returns a float32 scalar.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> # B = 2 rows, S = 1 shared sample: the diagonal holds each row's target score
        >>> logits = jnp.array([[2.0, 0.0, 1.0], [0.0, 1.0, -1.0]])
        >>> valid = jnp.array([True, True])
        >>> print(jnp.round(losses.gru4rec_loss(logits, valid, kind="cross-entropy"), 4))
        0.4076
        >>> print(f"{losses.gru4rec_loss(logits, valid, kind='bpr-max', bpreg=0.0):.4f}")
        0.2596
    """
    if kind not in GRU4REC_LOSSES:
        raise ConfigError(f"loss kind {kind!r}: use one of {', '.join(GRU4REC_LOSSES)}")
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"reduction={reduction!r}: use 'mean' or 'sum'")
    act = final_activation(final_act, kind)
    x = _f32(logits)
    B, C = x.shape
    if C < B:
        raise ConfigError(f"logits {x.shape}: need B + S columns, the first B the targets")
    rows = jnp.asarray(valid_rows, bool)
    x = jnp.where(rows[:, None], x, 0.0)  # padded rows: finite (even if NaN) and gradient-free
    if log_q is not None:
        x = x - _f32(log_q)
    x = act(x)
    cols_ok = jnp.concatenate([rows, jnp.ones((C - B,), bool)])
    diag = jnp.eye(B, C, dtype=bool)
    neg = cols_ok[None, :] & ~diag
    if col_items is not None:
        items = jnp.asarray(col_items)
        neg = neg & (items[None, :] != items[:B, None])
    has_neg = neg.any(axis=1)
    # A row with no negative computes on a dummy mask (all columns) and is dropped below.
    neg = neg | ~has_neg[:, None]
    pos = jnp.diagonal(x)
    if kind == "cross-entropy":
        log_p = pos - jax.nn.logsumexp(x, axis=1, where=neg | diag)
        per_row = _neg_log(log_p, eps)
    elif kind == "bpr-max":
        per_row = _bpr_max_rows(x, pos, neg, bpreg, eps)
    else:
        per_row = _top1_max_rows(x, pos, neg)
    per_row = jnp.where(has_neg, per_row, 0.0)
    return _row_mean(per_row, rows, reduction)


# Autoencoders: Mult-VAE / Mult-DAE (Liang et al., WWW 2018; dawenl/vae_cf), CDAE, AutoRec.


def multinomial_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Per-row multinomial negative log-likelihood: -Σ_i x_i log softmax(logits)_i.

    logits, x: [B, I] (x the multi-hot or count row; vae_cf multiplies the log-softmax by the
    raw, un-normalised input). Returns float32 [B]; the caller masks and averages rows.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> # uniform logits over 4 items, 2 positives: 2 · log 4
        >>> x = jnp.array([[1.0, 1.0, 0.0, 0.0]])
        >>> print(jnp.round(losses.multinomial_nll(jnp.zeros((1, 4)), x), 4))
        [2.7726]
    """
    log_p = jax.nn.log_softmax(_f32(logits), axis=-1)
    return -jnp.sum(log_p * _f32(x), axis=-1)


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) per row: Σ_d ½(-logvar + exp(logvar) + mu² - 1).

    mu, logvar: [B, D] → float32 [B] (vae_cf's KL before its batch mean).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> print(losses.gaussian_kl(jnp.array([[0.0, 1.0]]), jnp.zeros((1, 2))))
        [0.5]
    """
    mu, logvar = _f32(mu), _f32(logvar)
    return 0.5 * jnp.sum(-logvar + jnp.exp(logvar) + jnp.square(mu) - 1.0, axis=-1)


def kl_anneal(step: jax.Array, anneal_steps: int, cap: float) -> jax.Array:
    """β = min(cap, step / anneal_steps): vae_cf's linear KL annealing, from the update count.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> print(losses.kl_anneal(jnp.array(20), 200, 0.2), losses.kl_anneal(jnp.array(500), 200, 0.2))
        0.1 0.2
    """
    return jnp.minimum(jnp.float32(cap), _f32(step) / jnp.float32(max(anneal_steps, 1)))


def masked_row_mean(per_row: jax.Array, rows: jax.Array) -> jax.Array:
    """Mean of `per_row` [B] over the True entries of `rows` [B]; 0 if there are none.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> rows = jnp.array([True, True, False])
        >>> print(losses.masked_row_mean(jnp.array([1.0, 3.0, 100.0]), rows))
        2.0
    """
    return _row_mean(_f32(per_row), rows, "mean")


# GANs: CFGAN (Chae et al., CIKM 2018; Bigdasgit/CFGAN) and IRGAN (Wang et al., SIGIR 2017).


def sigmoid_bce(logits: jax.Array, label: float) -> jax.Array:
    """Element-wise sigmoid cross-entropy with a constant label (tf's
    sigmoid_cross_entropy_with_logits): softplus(-x) for label 1, softplus(x) for label 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> print(jnp.round(losses.sigmoid_bce(jnp.array([0.0, 2.0]), 1.0), 4))
        [0.6931 0.1269]
    """
    x = _f32(logits)
    return label * jax.nn.softplus(-x) + (1.0 - label) * jax.nn.softplus(x)


def l2_half(tree) -> jax.Array:
    """Σ w² / 2 over every leaf (tf.nn.l2_loss summed), float32 scalar.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> print(losses.l2_half({"w": jnp.array([1.0, 2.0]), "b": jnp.array([2.0])}))
        4.5
    """
    return sum(0.5 * jnp.sum(jnp.square(_f32(w))) for w in jax.tree.leaves(tree))


def cfgan_zr_penalty(output: jax.Array, zr_mask: jax.Array) -> jax.Array:
    """CFGAN's zero-reconstruction term per row: Σ_j y_j² over the sampled ZR entries.

    output float [B, N] (G's output); zr_mask bool/float [B, N]. Returns float32 [B].

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> out, zr = jnp.array([[0.5, 0.1, 0.2]]), jnp.array([[True, False, True]])
        >>> print(jnp.round(losses.cfgan_zr_penalty(out, zr), 4))
        [0.29]
    """
    return jnp.sum(jnp.square(_f32(output)) * _f32(zr_mask), axis=-1)


def irgan_reward(d_logits: jax.Array) -> jax.Array:
    """IRGAN's reward from the discriminator's logits: 2 (σ(x) - 1/2), in (-1, 1).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> print(jnp.round(losses.irgan_reward(jnp.array([0.0, 10.0])), 4))
        [0.     0.9999]
    """
    return 2.0 * (jax.nn.sigmoid(_f32(d_logits)) - 0.5)


def irgan_policy_gradient(log_prob: jax.Array, reward: jax.Array, mask: jax.Array) -> jax.Array:
    """IRGAN's generator loss per user: -mean_s log p_G(i_s | u) · reward_s (REINFORCE).

    log_prob float [B, S]: log-softmax of G at the sampled items; reward float [B, S]: the
    discriminator's reward already times the importance weight p_G / p_n (a constant);
    mask bool [B, S]: real samples. Returns float32 [B] (0 for a row without samples).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import losses
        >>> log_prob = jnp.log(jnp.array([[0.5, 0.25]]))
        >>> reward, mask = jnp.array([[1.0, -1.0]]), jnp.array([[True, True]])
        >>> print(jnp.round(losses.irgan_policy_gradient(log_prob, reward, mask), 4))
        [-0.3466]
    """
    m = _f32(mask)
    r = jax.lax.stop_gradient(_f32(reward))
    return -jnp.sum(_f32(log_prob) * r * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
