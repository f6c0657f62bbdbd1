"""NextItNet (Yuan et al., WSDM 2019) as a task: loss, `init_state`, `train_step`, `score`,
`dataset` and `build`.

Shapes: B user rows, M = `max_length`, S shared samples, I items, C channels.

Predicts the next item at every position of each user's last `max_length + 1` training
items (`jaxrec.data.windows.NextItNetRows`): full softmax (`loss.n_sample = 0`) or a
sampled softmax over the position's target plus `loss.n_sample` items drawn ∝
popularity^alpha, shared by the mini-batch, with logQ correction weighted by `loss.logq`;
or (`loss.kind: bpr-max`) GRU4Rec's BPR-max over the same samples.

Item tables carry the logical axis `items`, so they row-shard over `model`. With the
sampled loss and Adagrad (no weight decay, no clipping, `optim.sparse`) or `optim.tables`
they are updated row-wise on the rows a step touches (`_sparse_rows`); a full softmax
touches every output row, so then every parameter goes through the dense optax optimizer.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec import losses
from jaxrec.data.windows import nextitnet_dataset
from jaxrec.errors import ConfigError
from jaxrec.models.nextitnet import NextItNet
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

    model: NextItNet
    tx: optax.GradientTransformation
    learning_rate: optax.Schedule
    # (param, "items", row-wise optimizer) of the tables updated row-wise
    tables: tuple[tuple[str, str, str], ...]
    momentum: float
    weight_decay: float = 0.0  # row-wise tables: L2 on the rows a step touches
    n_sample: int = 0  # 0 = full softmax
    sample_alpha: float = 0.5
    logq: float = 0.0
    # The loss is the sum over a batch's positions divided by this constant (length
    # buckets) instead of their mean (0), so that each position weighs the same whether its
    # batch holds short or long rows.
    positions_per_batch: float = 0.0
    kind: str = "cross-entropy"  # or bpr-max over the sampled negatives
    bpreg: float = 1.0
    final_act: str = "linear"  # before bpr-max


def train_step(state: TableState, batch, rng, *, c: StepConfig):
    """One step on a mini-batch of user rows: ids/mask [B, M+1], every position trained."""
    key = jax.random.fold_in(rng, state.step)
    k_sample, k_drop = jax.random.split(key)
    ids, mask, valid = batch["ids"], batch["mask"], batch["valid"]
    in_mask, targets = mask[:, :-1], ids[:, 1:]
    weight = in_mask & mask[:, 1:]  # positions with a real item and a real next item
    num_items = state.params["E"].shape[0]
    samples = None
    if c.n_sample:
        samples = shared_samples(k_sample, state.sample_cdf, c.n_sample)
        lq_s = log_q(state.log_counts, samples, c.logq, c.sample_alpha)
        lq_t = log_q(state.log_counts, targets, c.logq, c.sample_alpha)
    model, rows, local_ids, local_samples = c.model, None, ids, samples
    if c.tables:
        named = {"ids": ("items", jnp.where(mask, ids, num_items)), "s": ("items", samples)}
        rows, loc = localize(named, {"items": num_items})
        local_ids, local_samples = loc["ids"], loc["s"]
        model = model.clone(num_items=rows["items"].shape[0])
    dense, tables = split_params(state.params, c.tables, rows)

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
            flat = logits.reshape(-1, logits.shape[-1])
            return losses.full_softmax_ce(flat, tgt.reshape(-1), weight.reshape(-1), reduction)
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
    return state, {"loss": loss, "examples": valid.sum()}


def represent(params, users, hist_ids, hist_mask, *, model: NextItNet, width: int):
    """The newest position's hidden state [B, C], reading the last `width` items.

    Narrower histories are not padded up to `width`: left padding does not change the
    output (padded positions are causal zeros), and the evaluator trims a chunk of short
    histories to a few columns, so scoring them costs their length, not `width`.
    """
    del users
    ids, mask = hist_ids[:, -width:], hist_mask[:, -width:]
    return model.apply({"params": params}, jnp.where(mask, ids, 0), mask)[:, -1]


def score(params, users, hist_ids, hist_mask, *, model: NextItNet, width: int):
    """Full-catalogue scores float32 [B, I]."""
    x = represent(params, users, hist_ids, hist_mask, model=model, width=width)
    return model.apply({"params": params}, x, method="score")


def build(cfg, split) -> Task:
    """The NextItNet task on `split.train` (the config's choices are checked by
    `load_config`)."""
    m, B, lc = cfg.model.nextitnet, cfg.train.batch_size, cfg.loss
    losses.final_activation(m.final_act, lc.kind)  # a bad name fails here, not inside jit
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
    counts = target_counts(split.train, split.num_items)
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
    tables = listed_tables(cfg, names)
    o = cfg.optim
    c = StepConfig(
        model,
        tx,
        schedule(o, total_steps),
        tables,
        o.momentum,
        weight_decay=o.weight_decay if tables else 0.0,  # row-wise tables: L2 applied here
        n_sample=lc.n_sample,
        sample_alpha=lc.sample_alpha,
        logq=lc.logq,
        positions_per_batch=per_batch,
        kind=lc.kind,
        bpreg=lc.bpreg,
        final_act=m.final_act,
    )
    width = m.max_length

    def init_state(rng):
        example = (jnp.zeros((B, width), jnp.int32), jnp.ones((B, width), bool))
        params = model.init(rng, *example)["params"]
        names = {k for k, _, _ in tables}
        return TableState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init({k: v for k, v in params.items() if k not in names}),
            table_slots=init_slots(params, tables, o.momentum),
            sample_cdf=jnp.asarray(cdf),
            log_counts=jnp.asarray(log_counts),
        )

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
        needs_order=True,
        init_state=init_state,
        train_step=functools.partial(train_step, c=c),
        score=functools.partial(score, model=model, width=width),
        dataset=dataset,
        represent=functools.partial(represent, model=model, width=width),
        item_vectors=lambda params: params["E" if m.tied else "W"],
        examples_per_epoch=users,
        history_width=m.max_length,
    )
