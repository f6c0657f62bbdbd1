"""Caser (Tang & Wang, WSDM 2018) as a task: loss, `init_state`, `train_step`, `score`,
`dataset` and `build`.

Shapes: B windows, L input items, T targets, N negatives per window, S shared samples,
I items, U users, d embedding.

Trains on sliding windows (L inputs → T targets, `jaxrec.data.windows.CaserWindows`).
Losses (`model.caser.loss`): `bce`, the official binary cross-entropy with `negatives × T`
uniform negatives per window: mean over targets of -log σ(y⁺) plus mean over negatives of
-log(1 - σ(y⁻)); `softmax` (RecBole's choice), the mean over targets of the cross-entropy
of a softmax over every item; `sampled-softmax`, each of a window's T targets against
`loss.n_sample` negatives ∝ popularity^alpha shared by the mini-batch, logQ-corrected.

Item and user tables carry logical axes `items`/`users`, so they row-shard over `model`.
With Adagrad (no weight decay, no clipping, `optim.sparse`) or `optim.tables` they are
updated row-wise on the rows a step touches (`_sparse_rows`); otherwise every parameter
goes through the dense optax optimizer (the official Adam with L2).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec import losses
from jaxrec.data.windows import CaserWindows, caser_dataset
from jaxrec.models.caser import Caser
from jaxrec.optim import make_optimizer, schedule
from jaxrec.tasks import Task
from jaxrec.tasks._samplers import log_q, sampler_tables, shared_samples, target_counts
from jaxrec.tasks._sparse_rows import (
    TableState,
    apply_updates,
    init_slots,
    listed_tables,
    localize,
    split_params,
)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static pieces of the step, bound with functools.partial before jit."""

    model: Caser
    tx: optax.GradientTransformation
    learning_rate: optax.Schedule
    # (param, "items" | "users", row-wise optimizer) of the tables updated row-wise
    tables: tuple[tuple[str, str, str], ...]
    momentum: float
    weight_decay: float = 0.0  # row-wise tables: L2 on the rows a step touches
    full_softmax: bool = False  # softmax over every item instead of BCE on negatives
    n_sample: int = 0  # sampled softmax over this many shared negatives (0: not sampled)
    sample_alpha: float = 0.5
    logq: float = 0.0


def _masked_mean(x, m):
    return jnp.where(m, x, 0.0).sum() / jnp.maximum(m.sum(), 1)


def loss(model, params, ids, masks, k_drop, c: StepConfig, sampled=None):
    """The configured loss of one mini-batch of windows (scalar float32).

    ids: {users [B], ids [B, L], targets [B, T], negatives [B, N][, samples [S]]}, in the
    rows of `params` (local ids in sparse mode); masks: (mask [B, L], target mask [B, T],
    negative mask [B, N]); sampled: (accidental hits [B, T], logQ of targets [B, T], logQ of
    samples [S]) for the sampled softmax.
    """
    mask, t_mask, n_mask = masks
    p = {"params": params}
    x = model.apply(p, ids["users"], ids["ids"], mask, train=True, rngs={"dropout": k_drop})
    if c.n_sample:  # sampled softmax, logQ-corrected, accidental hits left out
        hits, lq_t, lq_s = sampled
        pos = model.apply(p, x, ids["targets"], method="score")  # [B, T]
        neg = model.apply(p, x, ids["samples"], method="score")  # [B, S]
        return losses.grouped_shared_negatives_ce(
            pos, neg, valid=t_mask, hits=hits, log_q_pos=lq_t, log_q_neg=lq_s
        )
    if c.full_softmax:  # mean over real targets of logsumexp(all items) - target's score
        logits = model.apply(p, x, method="score")
        pos = jnp.take_along_axis(logits, ids["targets"], axis=1)
        lse = jax.nn.logsumexp(logits, axis=-1, keepdims=True)
        return _masked_mean(lse - pos, t_mask)
    pos = model.apply(p, x, ids["targets"], method="score")
    neg = model.apply(p, x, ids["negatives"], method="score")
    # The official loss: -mean log σ(y⁺) - mean log(1 - σ(y⁻)), over the real entries.
    return _masked_mean(-jax.nn.log_sigmoid(pos), t_mask) + _masked_mean(
        -jax.nn.log_sigmoid(-neg), n_mask
    )


def train_step(state: TableState, batch, rng, *, c: StepConfig):
    """One Adam/Adagrad step on a mini-batch of windows (see `CaserWindows` for the keys)."""
    key = jax.random.fold_in(rng, state.step)
    k_drop, k_sample = key, jax.random.fold_in(key, 1)  # dropout's stream as without samples
    valid, mask, t_mask = batch["valid"], batch["mask"], batch["target_mask"]
    t_mask = t_mask & valid[:, None]
    n_mask = jnp.broadcast_to(valid[:, None], batch["negatives"].shape)
    ids = {k: batch[k] for k in ("users", "ids", "targets", "negatives")}
    sampled = None
    if c.n_sample:  # shared negatives: [B, T] targets each against the same S items
        samples = shared_samples(k_sample, state.sample_cdf, c.n_sample)
        lq_s = log_q(state.log_counts, samples, c.logq, c.sample_alpha)
        lq_t = log_q(state.log_counts, batch["targets"], c.logq, c.sample_alpha)
        sampled = (losses.sample_hits(samples, batch["targets"]), lq_t, lq_s)  # hits [B, T]
        ids["samples"] = samples
    model, rows = c.model, None
    if c.tables:  # padding touches nothing: out-of-range ids gather zeros, scatters drop
        I, U = state.params["E"].shape[0], state.params["P"].shape[0]
        named = {
            "users": ("users", jnp.where(valid, ids["users"], U)),
            "ids": ("items", jnp.where(mask, ids["ids"], I)),
            "targets": ("items", jnp.where(t_mask, ids["targets"], I)),
        }
        if c.n_sample:  # the batch's BCE negatives are not read: no rows for them
            named["samples"] = ("items", ids["samples"])
        else:
            named["negatives"] = ("items", jnp.where(n_mask, ids["negatives"], I))
        rows, ids = localize(named, {"items": I, "users": U})
        model = model.clone(num_items=rows["items"].shape[0], num_users=rows["users"].shape[0])
    dense, tables = split_params(state.params, c.tables, rows)

    def loss_fn(dense, tables):
        masks = (mask, t_mask, n_mask)
        return loss(model, {**dense, **tables}, ids, masks, k_drop, c, sampled)

    value, (g_dense, g_tables) = jax.value_and_grad(loss_fn, argnums=(0, 1))(dense, tables)
    state = apply_updates(
        state,
        tx=c.tx,
        learning_rate=c.learning_rate,
        momentum=c.momentum,
        dense=dense,
        g_dense=g_dense,
        tables=[(k, rows[space], kind) for k, space, kind in c.tables],
        g_tables=g_tables,
        keep=valid.any(),
        weight_decay=c.weight_decay,
    )
    return state, {"loss": value, "examples": valid.sum()}


def _last(hist_ids, hist_mask, width: int):
    """The newest `width` columns of left-padded histories, left-padding narrower ones."""
    pad = width - hist_ids.shape[1]
    if pad > 0:
        hist_ids = jnp.pad(hist_ids, ((0, 0), (pad, 0)))
        hist_mask = jnp.pad(hist_mask, ((0, 0), (pad, 0)))
    return hist_ids[:, -width:], hist_mask[:, -width:]


def represent(params, users, hist_ids, hist_mask, *, model: Caser):
    """x = [z; P_u] [B, 2d] from the last L history items (eval: no dropout)."""
    ids, mask = _last(hist_ids, hist_mask, model.length)
    return model.apply({"params": params}, users, jnp.where(mask, ids, 0), mask)


def score(params, users, hist_ids, hist_mask, *, model: Caser):
    """Full-catalogue scores float32 [B, I]."""
    x = represent(params, users, hist_ids, hist_mask, model=model)
    return model.apply({"params": params}, x, method="score")


def build(cfg, split) -> Task:
    """The Caser task on `split.train` (the config's choices are checked by `load_config`)."""
    m, B, lc = cfg.model.caser, cfg.train.batch_size, cfg.loss
    softmax, sampled = m.loss == "softmax", m.loss == "sampled-softmax"
    model = Caser(
        num_items=split.num_items,
        num_users=split.num_users,
        length=m.length,
        embedding=m.embedding,
        horizontal_filters=m.horizontal_filters,
        vertical_filters=m.vertical_filters,
        dropout=m.dropout,
        dropout_embed=m.dropout_embed,
        dropout_user=m.dropout_user,
        conv_activation=m.conv_activation,
        fc_activation=m.fc_activation,
        tied=m.tied,
        dtype=jnp.dtype(cfg.model.compute_dtype),
    )
    kw = dict(
        num_items=split.num_items,
        length=m.length,
        targets=m.targets,
        windows=m.windows,
        negatives=m.negatives if m.loss == "bce" else 0,
        batch_size=B,
        epochs=cfg.train.epochs,
        seed=cfg.train.seed,
    )
    windows = CaserWindows(split.train, **kw).num
    total_steps = -(-windows // B) * cfg.train.epochs
    tx = make_optimizer(cfg.optim, total_steps)
    names = (("E", "items"), ("b2", "items"), ("P", "users"))
    names += () if m.tied else (("W2", "items"),)
    if softmax:  # a softmax over every item touches every output row (as NextItNet's)
        names = ()
    tables = listed_tables(cfg, names)
    sampler = (np.zeros(1, np.float32), np.zeros(1, np.float32))
    if sampled:
        sampler = sampler_tables(target_counts(split.train, split.num_items), lc.sample_alpha)
    o = cfg.optim
    c = StepConfig(
        model,
        tx,
        schedule(o, total_steps),
        tables,
        o.momentum,
        weight_decay=o.weight_decay if tables else 0.0,  # row-wise tables: L2 applied here
        full_softmax=softmax,
    )
    if sampled:
        c = dataclasses.replace(c, n_sample=lc.n_sample, sample_alpha=lc.sample_alpha, logq=lc.logq)

    def init_state(rng):
        example = (jnp.zeros((B,), jnp.int32), jnp.zeros((B, m.length), jnp.int32))
        params = model.init(rng, *example, jnp.ones((B, m.length), bool))["params"]
        names = {k for k, _, _ in tables}
        return TableState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init({k: v for k, v in params.items() if k not in names}),
            table_slots=init_slots(params, tables, o.momentum),
            sample_cdf=jnp.asarray(sampler[0]),
            log_counts=jnp.asarray(sampler[1]),
        )

    def dataset(process_index: int, process_count: int):
        return caser_dataset(
            split.train,
            **kw,
            shuffle=cfg.train.shuffle,
            process_index=process_index,
            process_count=process_count,
        )

    return Task(
        name="caser",
        needs_order=True,
        init_state=init_state,
        train_step=functools.partial(train_step, c=c),
        score=functools.partial(score, model=model),
        dataset=dataset,
        represent=functools.partial(represent, model=model),
        item_vectors=lambda params: params["E" if m.tied else "W2"],
        examples_per_epoch=windows,
        history_width=m.length,
    )
