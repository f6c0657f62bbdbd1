"""Convolutional sequential recommenders: Caser and NextItNet as tasks.

Caser (Tang & Wang, WSDM 2018) trains on sliding windows (L inputs → T targets) with
`negatives × T` uniform negatives per window and the official binary cross-entropy:
mean over targets of -log σ(y⁺) plus mean over negatives of -log(1 - σ(y⁻)); or
(`model.caser.loss: softmax`, RecBole's choice) the mean over targets of the cross-entropy
of a softmax over every item; or (`sampled-softmax`) NextItNet's sampled softmax below,
each of a window's T targets against the same shared negatives.
NextItNet (Yuan et al., WSDM 2019) predicts the next item at every position of each user's
last `max_length + 1` training items: full softmax (`loss.n_sample = 0`) or a sampled
softmax over the position's target plus `loss.n_sample` items drawn ∝ popularity^alpha,
shared by the mini-batch, with logQ correction weighted by `loss.logq`.

Item (and Caser's user) tables carry logical axes `items`/`users`, so they row-shard over
`model`. With Adagrad (no weight decay, no clipping, `optim.sparse`) they are updated
row-wise on the rows a step touches (jaxrec.embedding), as in sequential.py; otherwise
every parameter goes through the dense optax optimizer (Caser's official Adam with L2).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrec import losses
from jaxrec.data.pipeline import item_counts
from jaxrec.data.windows import CaserWindows, caser_dataset, nextitnet_dataset
from jaxrec.embedding import (
    ROW_OPTIMIZERS,
    gather_rows,
    init_row_slots,
    touched_rows,
    update_rows,
)
from jaxrec.errors import ConfigError
from jaxrec.models.caser import ACTIVATIONS, Caser
from jaxrec.models.nextitnet import HEADS as NEXTITNET_HEADS
from jaxrec.models.nextitnet import NextItNet
from jaxrec.optim import make_optimizer, schedule
from jaxrec.tasks import Task
from jaxrec.tasks.sequential import sampler_tables

# Caser's losses: the paper's BCE on sampled negatives, a softmax over every item
# (RecBole's), or a sampled softmax over loss.n_sample shared negatives with logQ.
CASER_LOSSES = ("bce", "softmax", "sampled-softmax")


class CNNState(struct.PyTreeNode):
    """Train state of Caser / NextItNet.

    params: all parameters; opt_state: optax state of the dense ones; table_slots: the
    row-wise optimizer's slots per sparse table (`embedding.init_row_slots`; {} when dense);
    sample_cdf float32 [I] (cumulative popularity^alpha) and log_counts float32 [I]: the
    NextItNet sampler and its logQ term (empty for Caser).
    """

    step: jax.Array
    params: dict
    opt_state: optax.OptState
    table_slots: dict
    sample_cdf: jax.Array
    log_counts: jax.Array


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static pieces of the step, bound with functools.partial before jit."""

    model: Caser | NextItNet
    tx: optax.GradientTransformation
    learning_rate: optax.Schedule
    # (param, "items" | "users", row-wise optimizer) of the tables updated row-wise
    tables: tuple[tuple[str, str, str], ...]
    momentum: float
    weight_decay: float = 0.0  # row-wise tables: L2 on the rows a step touches
    n_sample: int = 0  # NextItNet: 0 = full softmax
    full_softmax: bool = False  # Caser: softmax over every item instead of BCE on negatives
    sample_alpha: float = 0.5
    logq: float = 0.0
    # NextItNet: the loss is the sum over a batch's positions divided by this constant
    # (length buckets) instead of their mean (0), so that each position weighs the same
    # whether its batch holds short or long rows.
    positions_per_batch: float = 0.0
    kind: str = "cross-entropy"  # NextItNet: or bpr-max over the sampled negatives
    bpreg: float = 1.0
    final_act: str = "linear"  # before bpr-max


def _localize(named: dict, sizes: dict) -> tuple[dict, dict]:
    """named {name: (kind, ids)} → (rows {kind: unique ids}, {name: ids into those rows})."""
    rows, local = {}, {}
    for kind, n in sizes.items():
        names = [k for k, (kd, _) in named.items() if kd == kind]
        flat = jnp.concatenate([named[k][1].reshape(-1) for k in names])
        rows[kind], inverse = touched_rows(flat, n)
        start = 0
        for k in names:
            a = named[k][1]
            local[k] = inverse[start : start + a.size].reshape(a.shape)
            start += a.size
    return rows, local


def _split_params(state, c: StepConfig, rows: dict | None):
    """(dense params, gathered table rows) for this step."""
    names = {k for k, _, _ in c.tables}
    dense = {k: v for k, v in state.params.items() if k not in names}
    tables = {k: gather_rows(state.params[k], rows[space]) for k, space, _ in c.tables}
    return dense, tables


def _apply(state, c: StepConfig, dense, g_dense, tables_rows, g_tables, keep):
    """Dense optax update + the row-wise optimizer on touched rows; a no-op when `keep` is
    False."""
    updates, opt_state = c.tx.update(g_dense, state.opt_state, dense)
    new_dense = optax.apply_updates(dense, updates)
    # An all-padding mini-batch (end of an epoch) must not move the dense optimizer.
    new_dense, opt_state = jax.tree.map(
        lambda n, o: jnp.where(keep, n, o), (new_dense, opt_state), (dense, state.opt_state)
    )
    params, slots = dict(new_dense), dict(state.table_slots)
    lr = c.learning_rate(state.step)
    for k, space, kind in c.tables:
        n = state.params[k].shape[0]
        rows = jnp.where(keep, tables_rows[space], n)  # write nothing (momentum would move rows)
        grad = g_tables[k]
        if c.weight_decay:  # L2 on the touched rows only (padding rows gather zeros)
            grad = grad + c.weight_decay * gather_rows(state.params[k], rows)
        params[k], slots[k] = update_rows(
            kind, state.params[k], slots[k], rows, grad, lr, state.step + 1, c.momentum
        )
    return state.replace(
        step=state.step + keep.astype(state.step.dtype),
        params=params,
        opt_state=opt_state,
        table_slots=slots,
    )


def _shared_samples(state, key, c: StepConfig) -> tuple[jax.Array, jax.Array]:
    """c.n_sample items ∝ count^alpha shared by the mini-batch: (ids int32 [S], logQ [S])."""
    num_items = state.params["E"].shape[0]
    u = jax.random.uniform(key, (c.n_sample,)) * state.sample_cdf[-1]
    samples = jnp.searchsorted(state.sample_cdf, u, side="right").astype(jnp.int32)
    samples = jnp.minimum(samples, num_items - 1)
    return samples, _log_q(state, samples, c)


def _log_q(state, items, c: StepConfig) -> jax.Array:
    """logQ term of `items` (q ∝ count^alpha; the target's too, as TF's sampled softmax)."""
    return c.logq * c.sample_alpha * state.log_counts[items]


def _masked_mean(x, m):
    return jnp.where(m, x, 0.0).sum() / jnp.maximum(m.sum(), 1)


def caser_train_step(state: CNNState, batch, rng, *, c: StepConfig):
    """One Adam/Adagrad step on a mini-batch of windows (see `CaserWindows` for the keys)."""
    key = jax.random.fold_in(rng, state.step)
    k_drop, k_sample = key, jax.random.fold_in(key, 1)  # dropout's stream as without samples
    valid, mask, t_mask = batch["valid"], batch["mask"], batch["target_mask"]
    t_mask = t_mask & valid[:, None]
    n_mask = jnp.broadcast_to(valid[:, None], batch["negatives"].shape)
    ids = {k: batch[k] for k in ("users", "ids", "targets", "negatives")}
    if c.n_sample:  # shared negatives: [B, T] targets each against the same S items
        samples, lq_s = _shared_samples(state, k_sample, c)
        lq_t = _log_q(state, batch["targets"], c)
        hits = losses.sample_hits(samples, batch["targets"])  # [B, T]
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
        rows, ids = _localize(named, {"items": I, "users": U})
        model = model.clone(num_items=rows["items"].shape[0], num_users=rows["users"].shape[0])
    dense, tables = _split_params(state, c, rows)

    def loss_fn(dense, tables):
        p = {"params": {**dense, **tables}}
        x = model.apply(p, ids["users"], ids["ids"], mask, train=True, rngs={"dropout": k_drop})
        if c.n_sample:  # sampled softmax, logQ-corrected, accidental hits left out
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

    loss, (g_dense, g_tables) = jax.value_and_grad(loss_fn, argnums=(0, 1))(dense, tables)
    state = _apply(state, c, dense, g_dense, rows, g_tables, valid.any())
    return state, {"loss": loss, "examples": valid.sum()}


def nextitnet_train_step(state: CNNState, batch, rng, *, c: StepConfig):
    """One step on a mini-batch of user rows: ids/mask [B, M+1], every position trained."""
    key = jax.random.fold_in(rng, state.step)
    k_sample, k_drop = jax.random.split(key)
    ids, mask, valid = batch["ids"], batch["mask"], batch["valid"]
    in_mask, targets = mask[:, :-1], ids[:, 1:]
    weight = in_mask & mask[:, 1:]  # positions with a real item and a real next item
    num_items = state.params["E"].shape[0]
    samples = None
    if c.n_sample:
        samples, lq_s = _shared_samples(state, k_sample, c)
        lq_t = _log_q(state, targets, c)
    model, rows, local_ids, local_samples = c.model, None, ids, samples
    if c.tables:
        named = {"ids": ("items", jnp.where(mask, ids, num_items)), "s": ("items", samples)}
        rows, loc = _localize(named, {"items": num_items})
        local_ids, local_samples = loc["ids"], loc["s"]
        model = model.clone(num_items=rows["items"].shape[0])
    dense, tables = _split_params(state, c, rows)

    reduction = "sum" if c.positions_per_batch else "mean"

    def loss_fn(dense, tables):
        total = batch_loss(dense, tables)
        if not c.positions_per_batch:
            return total, total
        return total / c.positions_per_batch, total / jnp.maximum(weight.sum(), 1)

    def batch_loss(dense, tables):
        p = {"params": {**dense, **tables}}
        h = model.apply(p, local_ids[:, :-1], in_mask, train=True, rngs={"dropout": k_drop})
        tgt = local_ids[:, 1:]
        if not c.n_sample:
            logits = model.apply(p, h, method="score")
            return losses.full_softmax_ce(
                logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), weight.reshape(-1),
                reduction,
            )  # fmt: skip
        pos = model.apply(p, h, tgt, method="score_targets")
        neg = model.apply(p, h, local_samples, method="score")
        # A sample equal to the row's own target is an accidental hit: left out of its row.
        hit_free = (samples[None, None, :] != targets[..., None]).reshape(-1, c.n_sample)
        if c.kind == "bpr-max":  # as GRU4Rec: scores - logQ, then final_act, then the loss
            act = losses.final_activation(c.final_act, c.kind)
            return losses.shared_negatives_bpr_max(
                act(pos - lq_t).reshape(-1),
                act(neg - lq_s).reshape(-1, c.n_sample),
                valid=weight.reshape(-1),
                neg_mask=hit_free,
                bpreg=c.bpreg,
                reduction=reduction,
            )
        return losses.shared_negatives_ce(
            pos.reshape(-1),
            neg.reshape(-1, c.n_sample),
            valid=weight.reshape(-1),
            log_q_pos=lq_t.reshape(-1),
            log_q_neg=lq_s,
            neg_mask=hit_free,
            reduction=reduction,
        )

    grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
    (_, loss), (g_dense, g_tables) = grad_fn(dense, tables)
    state = _apply(state, c, dense, g_dense, rows, g_tables, valid.any())
    return state, {"loss": loss, "examples": valid.sum()}


def _last(hist_ids, hist_mask, width: int):
    """The newest `width` columns of left-padded histories, left-padding narrower ones."""
    pad = width - hist_ids.shape[1]
    if pad > 0:
        hist_ids = jnp.pad(hist_ids, ((0, 0), (pad, 0)))
        hist_mask = jnp.pad(hist_mask, ((0, 0), (pad, 0)))
    return hist_ids[:, -width:], hist_mask[:, -width:]


def caser_represent(params, users, hist_ids, hist_mask, *, model: Caser):
    """x = [z; P_u] [B, 2d] from the last L history items (eval: no dropout)."""
    ids, mask = _last(hist_ids, hist_mask, model.length)
    return model.apply({"params": params}, users, jnp.where(mask, ids, 0), mask)


def nextitnet_represent(params, users, hist_ids, hist_mask, *, model: NextItNet, width: int):
    """The newest position's hidden state [B, C], reading the last `width` items.

    Narrower histories are not padded up to `width`: left padding does not change the
    output (padded positions are causal zeros), and the evaluator trims a chunk of short
    histories to a few columns, so scoring them costs their length, not `width` (Games'
    test users: 8 items on average against the config's 50).
    """
    del users
    ids, mask = hist_ids[:, -width:], hist_mask[:, -width:]
    return model.apply({"params": params}, jnp.where(mask, ids, 0), mask)[:, -1]


def _score(params, users, hist_ids, hist_mask, *, model, represent):
    """Full-catalogue scores float32 [B, I]."""
    x = represent(params, users, hist_ids, hist_mask)
    return model.apply({"params": params}, x, method="score")


def item_tables(cfg, names: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """(name, row space, row-wise optimizer) of the tables updated row-wise; () = dense.

    `names`: (param, "items" | "users") of the model's tables. Default: Adagrad for
    optim.name=adagrad (exact: a zero gradient moves nothing); every other optimizer dense.
    `optim.tables` picks row-wise optimizers per table (`{E: lazy_adam, ...}`, every table
    listed); then `optim.weight_decay` is an L2 term on the rows a step touches, as
    FBGEMM's row-wise optimizers apply it, not on the whole table as dense L2 does.
    `optim.clip_norm` scales every row, so it cannot be combined with `optim.tables`.
    """
    o, chosen = cfg.optim, dict(cfg.optim.tables or {})
    known = [n for n, _ in names]
    if chosen and not names:
        raise ConfigError(
            "optim.tables: this loss scores every item (full softmax), so every row moves; "
            "leave optim.tables unset"
        )
    if chosen:
        if set(chosen) != set(known):
            raise ConfigError(
                f"optim.tables {sorted(chosen)}: list every item/user table of this model, "
                f"{known}, each with one of {', '.join(ROW_OPTIMIZERS)}"
            )
        bad = {k: v for k, v in chosen.items() if v not in ROW_OPTIMIZERS}
        if bad:
            raise ConfigError(f"optim.tables {bad}: use one of {', '.join(ROW_OPTIMIZERS)}")
    if chosen and o.sparse and o.clip_norm:
        raise ConfigError(
            "optim.tables with optim.clip_norm: global-norm clipping scales every row of "
            "every table, so no table can be updated row-wise; drop one of the two"
        )
    if not o.sparse or o.clip_norm or not names:
        return ()
    if chosen:
        if o.weight_decay and o.name == "adamw":
            raise ConfigError("optim.tables with adamw: its decoupled decay has no row-wise form")
        return tuple((n, space, chosen[n]) for n, space in names)
    if o.name != "adagrad" or o.weight_decay:
        return ()
    return tuple((n, space, "adagrad") for n, space in names)


def _step_config(cfg, model, tx, total_steps: int, tables) -> StepConfig:
    o = cfg.optim
    wd = o.weight_decay if tables else 0.0  # row-wise tables: their L2 is applied here
    return StepConfig(model, tx, schedule(o, total_steps), tables, o.momentum, weight_decay=wd)


def _state_init(model, tx, tables, example, sampler, momentum: float):
    """init_state(rng) -> CNNState; sampler = (cdf, log_counts) numpy arrays."""

    def init_state(rng):
        params = model.init(rng, *example)["params"]
        names = {k for k, _, _ in tables}
        dense = {k: v for k, v in params.items() if k not in names}
        return CNNState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(dense),
            # Slots share their table's logical axes, so they are row-sharded alike.
            table_slots={k: init_row_slots(kind, params[k], momentum) for k, _, kind in tables},
            sample_cdf=jnp.asarray(sampler[0]),
            log_counts=jnp.asarray(sampler[1]),
        )

    return init_state


def _build_caser(cfg, split) -> Task:
    m, B = cfg.model.caser, cfg.train.batch_size
    for name in (m.conv_activation, m.fc_activation):
        if name not in ACTIVATIONS:
            raise ConfigError(f"caser activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    if m.length < 1 or m.targets < 1 or m.negatives < 0:
        raise ConfigError("model.caser: length and targets must be ≥ 1, negatives ≥ 0")
    if m.loss not in CASER_LOSSES:
        raise ConfigError(
            f"model.caser.loss={m.loss!r}: use bce (the paper), softmax or sampled-softmax"
        )
    softmax, sampled = m.loss == "softmax", m.loss == "sampled-softmax"
    lc = cfg.loss
    if sampled and lc.n_sample < 1:
        raise ConfigError("model.caser.loss=sampled-softmax needs loss.n_sample ≥ 1")
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
    kw = dict(num_items=split.num_items, length=m.length, targets=m.targets, windows=m.windows)
    kw.update(negatives=m.negatives if m.loss == "bce" else 0, batch_size=B,
              epochs=cfg.train.epochs, seed=cfg.train.seed)  # fmt: skip
    windows = CaserWindows(split.train, **kw).num
    total_steps = -(-windows // B) * cfg.train.epochs
    tx = make_optimizer(cfg.optim, total_steps)
    names = (("E", "items"), ("b2", "items"), ("P", "users"))
    names += () if m.tied else (("W2", "items"),)
    if softmax:  # a softmax over every item touches every output row (as NextItNet's)
        names = ()
    tables = item_tables(cfg, names)
    example = (jnp.zeros((B,), jnp.int32), jnp.zeros((B, m.length), jnp.int32))
    example += (jnp.ones((B, m.length), bool),)
    sampler = (np.zeros(1, np.float32), np.zeros(1, np.float32))
    if sampled:
        sampler = sampler_tables(item_counts(split.train, split.num_items), lc.sample_alpha)
    c = _step_config(cfg, model, tx, total_steps, tables)
    c = dataclasses.replace(c, full_softmax=softmax)
    if sampled:
        c = dataclasses.replace(c, n_sample=lc.n_sample, sample_alpha=lc.sample_alpha, logq=lc.logq)
    represent = functools.partial(caser_represent, model=model)

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
        init_state=_state_init(model, tx, tables, example, sampler, cfg.optim.momentum),
        train_step=functools.partial(caser_train_step, c=c),
        score=functools.partial(_score, model=model, represent=represent),
        dataset=dataset,
        represent=represent,
        item_vectors=lambda params: params["E" if m.tied else "W2"],
        examples_per_epoch=windows,
        history_width=m.length,
    )


def _build_nextitnet(cfg, split) -> Task:
    m, B, lc = cfg.model.nextitnet, cfg.train.batch_size, cfg.loss
    if lc.kind not in ("cross-entropy", "bpr-max"):
        raise ConfigError(f"nextitnet: loss.kind={lc.kind!r}; use cross-entropy or bpr-max")
    if lc.kind == "bpr-max" and not lc.n_sample:
        raise ConfigError("nextitnet: loss.kind=bpr-max needs sampled negatives (loss.n_sample)")
    losses.final_activation(m.final_act, lc.kind)  # a bad name fails here, not inside jit
    if m.max_length < 1 or m.kernel_size < 1 or not m.dilations:
        raise ConfigError("model.nextitnet: max_length, kernel_size ≥ 1 and dilations non-empty")
    if m.head not in NEXTITNET_HEADS:
        raise ConfigError(f"model.nextitnet.head={m.head!r}: use {' or '.join(NEXTITNET_HEADS)}")
    model = NextItNet(
        num_items=split.num_items,
        embedding=m.embedding,
        dilations=tuple(m.dilations),
        kernel_size=m.kernel_size,
        dropout=m.dropout,
        dropout_embed=m.dropout_embed,
        tied=m.tied,
        head=m.head,
        dtype=jnp.dtype(cfg.model.compute_dtype),
    )
    counts = item_counts(split.train, split.num_items)
    if counts.sum() == 0:
        raise ConfigError("no training sequence has 2 or more items; nothing to learn from")
    cdf, log_counts = sampler_tables(counts, lc.sample_alpha)
    users = int((split.train.lengths >= 2).sum())
    # Trained positions per user row (its last max_length + 1 items, minus the first).
    positions = np.minimum(split.train.lengths, m.max_length + 1) - 1
    per_batch = B * float(positions[positions >= 1].mean()) if m.length_buckets else 0.0
    total_steps = -(-users // B) * cfg.train.epochs
    tx = make_optimizer(cfg.optim, total_steps)
    # Full softmax touches every output row, so only the sampled form has sparse tables.
    names = (("E", "items"), ("b", "items")) + (() if m.tied else (("W", "items"),))
    names = names if lc.n_sample else ()
    tables = item_tables(cfg, names)
    example = (jnp.zeros((B, m.max_length), jnp.int32), jnp.ones((B, m.max_length), bool))
    c = _step_config(cfg, model, tx, total_steps, tables)
    c = dataclasses.replace(
        c,
        n_sample=lc.n_sample,
        sample_alpha=lc.sample_alpha,
        logq=lc.logq,
        kind=lc.kind,
        bpreg=lc.bpreg,
        final_act=m.final_act,
        positions_per_batch=per_batch,
    )
    represent = functools.partial(nextitnet_represent, model=model, width=m.max_length)

    def dataset(process_index: int, process_count: int):
        return nextitnet_dataset(
            split.train,
            max_length=m.max_length,
            batch_size=B,
            epochs=cfg.train.epochs,
            seed=cfg.train.seed,
            shuffle=cfg.train.shuffle,
            process_index=process_index,
            process_count=process_count,
            length_buckets=tuple(m.length_buckets),
        )

    return Task(
        name="nextitnet",
        init_state=_state_init(model, tx, tables, example, (cdf, log_counts), cfg.optim.momentum),
        train_step=functools.partial(nextitnet_train_step, c=c),
        score=functools.partial(_score, model=model, represent=represent),
        dataset=dataset,
        represent=represent,
        item_vectors=lambda params: params["E" if m.tied else "W"],
        examples_per_epoch=users,
        history_width=m.max_length,
    )


def build(cfg, split) -> Task:
    """The Caser or NextItNet task (by `cfg.model.name`) on `split.train`."""
    builders = {"caser": _build_caser, "nextitnet": _build_nextitnet}
    if cfg.model.name not in builders:
        raise ConfigError(f"model.name={cfg.model.name!r} is not a CNN model: caser, nextitnet")
    return builders[cfg.model.name](cfg, split)
