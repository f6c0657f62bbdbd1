"""GRU4Rec (Hidasi & Karatzoglou, CIKM 2018) as a task: session-parallel training with
sampled negatives; its loss wiring, `init_state`, `train_step`, `score`, `dataset`, `build`.

Shapes: T mini-batches per call, B rows (session-parallel streams), S extra samples,
I items, H hidden units.

Loss and sampling follow the official GRU4Rec: each row's target is scored against the
other rows' targets (in-batch negatives) plus `n_sample` extra items drawn ∝
popularity^alpha and shared by the mini-batch (`_samplers`), logits [B, B + S]; then
cross-entropy, BPR-max or TOP1-max. One compiled call runs T mini-batches with `lax.scan`,
carrying the GRU state across them exactly as the official code carries it across
mini-batches (one step of back-propagation through time). Item tables are updated
row-wise on the rows a step touches (`_sparse_rows`) where `item_tables` says so.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import struct

from jaxrec import losses
from jaxrec.data.pipeline import session_parallel_dataset
from jaxrec.embedding import ROW_OPTIMIZERS, gather_rows, touched_rows
from jaxrec.errors import ConfigError
from jaxrec.models.gru4rec import GRU4Rec
from jaxrec.optim import make_optimizer, schedule
from jaxrec.tasks import Task
from jaxrec.tasks._samplers import sampler_tables, shared_samples, target_counts
from jaxrec.tasks._sparse_rows import apply_updates, init_slots


class GRU4RecState(struct.PyTreeNode):
    """Train state of GRU4Rec.

    params: all model parameters; opt_state: optax state of the dense parameters (all of
    them when the tables are updated densely); table_slots: per item table updated
    row-wise, its optimizer slots ({'acc'[, 'mom']} Adagrad, {'m', 'v'} lazy Adam), each
    shaped like the table ({} when dense); hidden: carried GRU states, per layer [B, H_l];
    sample_cdf: float32 [I] cumulative popularity^alpha; log_counts: float32 [I] log of the
    training counts (the official logQ correction uses raw counts).
    """

    step: jax.Array
    params: dict
    opt_state: optax.OptState
    table_slots: dict
    hidden: tuple
    sample_cdf: jax.Array
    log_counts: jax.Array


def make_model(cfg, num_items: int) -> GRU4Rec:
    m = cfg.model.gru4rec
    return GRU4Rec(
        num_items=num_items,
        layers=tuple(m.layers),
        embedding=m.embedding,
        constrained_embedding=m.constrained_embedding,
        dropout_embed=m.dropout_embed,
        dropout_hidden=m.dropout_hidden,
        dtype=jnp.dtype(cfg.model.compute_dtype),
    )


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static pieces of the step, bound with functools.partial before jit."""

    model: GRU4Rec
    tx: optax.GradientTransformation
    learning_rate: optax.Schedule
    tables: tuple[tuple[str, str], ...]  # (item table, row-wise optimizer | dense); () = dense
    momentum: float  # heavy-ball momentum of the row-wise Adagrad (lazy: touched rows only)
    loss: object  # LossConfig
    final_act: str

    @property
    def rowwise(self) -> tuple[str, ...]:
        return tuple(name for name, kind in self.tables if kind != "dense")


def train_step(state: GRU4RecState, batch, rng, *, c: StepConfig):
    """T session-parallel updates. batch: inputs/targets int32 [T, B], reset/valid bool [T, B]."""
    num_items = state.sample_cdf.shape[0]

    def one(state, mb):
        key = jax.random.fold_in(rng, state.step)
        k_sample, k_drop = jax.random.split(key)
        valid, B = mb["valid"], mb["valid"].shape[0]
        hidden = tuple(jnp.where(mb["reset"][:, None], 0.0, h) for h in state.hidden)
        negatives = shared_samples(k_sample, state.sample_cdf, c.loss.n_sample)
        cols = jnp.concatenate([mb["targets"], negatives])
        log_q = None
        if c.loss.logq:
            log_q = c.loss.logq * losses.gru4rec_log_q(
                state.log_counts, cols, B, c.loss.sample_alpha
            )

        names = [name for name, _ in c.tables]  # every item table, in sparse mode
        others = {k: v for k, v in state.params.items() if k not in names}
        if c.tables:  # the step sees a catalogue made of the rows it touches
            # Padded rows touch nothing (out-of-range id), as the official batch shrinks.
            pad = jnp.int32(num_items)
            ids = [jnp.where(valid, mb["inputs"], pad), jnp.where(valid, mb["targets"], pad)]
            rows, local = touched_rows(jnp.concatenate([*ids, negatives]), num_items)
            inputs, cols = local[:B], local[B:]
            tables = {k: gather_rows(state.params[k], rows) for k in names}
            model = c.model.clone(num_items=rows.shape[0])
        else:
            inputs, tables, model = mb["inputs"], {}, c.model

        def loss_fn(dense, tables):
            params = {**dense, **tables}
            new_hidden, out = model.apply(
                {"params": params}, inputs, hidden, train=True, rngs={"dropout": k_drop}
            )
            logits = model.apply({"params": params}, out, cols, method="score")
            # The official cost is the sum over rows / the fixed batch size, so the shrinking
            # mini-batches at the end of an epoch take proportionally smaller steps.
            loss_sum = losses.gru4rec_loss(
                logits,
                valid,
                kind=c.loss.kind,
                bpreg=c.loss.bpreg,
                log_q=log_q,
                final_act=c.final_act,
                reduction="sum",
            )
            return loss_sum / B, (new_hidden, loss_sum)

        (_, (new_hidden, loss_sum)), (g_dense, g_tables) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(others, tables)
        # Tables kept dense in sparse mode go through optax with a full-size gradient.
        dense = {k: state.params[k] for k in state.params if k not in c.rowwise}
        g_dense = {
            **g_dense,
            **{
                k: jnp.zeros_like(state.params[k]).at[rows].add(g_tables[k], mode="drop")
                for k in names
                if k not in c.rowwise
            },
        }
        # An all-padding mini-batch (end of an epoch) must not move the dense optimizer;
        # row-wise Adagrad with a zero gradient is already a no-op, and it writes no row
        # (momentum would move them).
        state = apply_updates(
            state,
            tx=c.tx,
            learning_rate=c.learning_rate,
            momentum=c.momentum,
            dense=dense,
            g_dense=g_dense,
            tables=[(k, rows, kind) for k, kind in c.tables if kind != "dense"],
            g_tables=g_tables,
            keep=valid.any(),
        )
        state = state.replace(hidden=tuple(jax.lax.stop_gradient(h) for h in new_hidden))
        return state, (loss_sum, valid.sum())

    state, (loss_sums, counts) = jax.lax.scan(one, state, batch)
    total = counts.sum()
    # Reported: mean loss per example (the official per-epoch figure weights by valid rows).
    return state, {"loss": loss_sums.sum() / jnp.maximum(total, 1), "examples": total}


def score(params, users, hist_ids, hist_mask, *, model: GRU4Rec):
    """Full-catalogue scores after reading each history: float32 [B, I]."""
    del users
    out = model.apply({"params": params}, hist_ids, hist_mask, method="encode")
    return model.apply({"params": params}, out, method="score")


def represent(params, users, hist_ids, hist_mask, *, model: GRU4Rec):
    """The user's representation: the last layer's GRU state after the history, float32 [B, H]."""
    del users
    return model.apply({"params": params}, hist_ids, hist_mask, method="encode")


def item_vectors(params):
    """Output item embeddings `Wy`, float32 [I, H] (scores are h · Wy[i] + By[i])."""
    return params["Wy"]


def item_tables(cfg, model: GRU4Rec) -> tuple[tuple[str, str], ...]:
    """(name, row-wise optimizer) of the [I, ...] parameters updated row-wise; () = dense.

    Default per table: Adagrad for optim.name=adagrad (exact: a zero gradient moves nothing,
    as in the official GRU4Rec), lazy Adam for adam; `optim.tables` picks per table
    (`{Wy: lazy_adam, By: adagrad}`; `dense` keeps one table dense). AdamW, SGD, weight decay
    and global-norm clipping touch every row by definition: with them the default is dense,
    and a row-wise choice in `optim.tables` is a ConfigError rather than silently dense.
    """
    o = cfg.optim
    names = ["Wy", "By"]
    if model.embedding > 0:
        names.append("E")
    elif not model.constrained_embedding:
        names.append("Wx0")
    chosen = dict(o.tables or {})
    unknown = set(chosen) - set(names)
    if unknown:
        raise ConfigError(
            f"optim.tables names {sorted(unknown)}, not item tables of this model: {names}"
        )
    for name, kind in chosen.items():
        if kind not in (*ROW_OPTIMIZERS, "dense"):
            raise ConfigError(
                f"optim.tables.{name}={kind!r}: use one of {', '.join(ROW_OPTIMIZERS)} or dense"
            )
    rowwise = {n: k for n, k in chosen.items() if k != "dense"}
    if rowwise and o.sparse and (o.weight_decay or o.clip_norm):
        knob = "optim.weight_decay" if o.weight_decay else "optim.clip_norm"
        raise ConfigError(
            f"optim.tables {rowwise} with {knob}: it moves every row of every table, so "
            f"no table can be updated row-wise; drop one of the two (or set the tables dense)"
        )
    if not o.sparse or o.weight_decay or o.clip_norm:
        return ()
    default = {"adagrad": "adagrad", "adam": "lazy_adam"}.get(o.name, "dense")
    out = tuple((n, chosen.get(n, default)) for n in names)
    # A table kept dense in sparse mode still reads only its touched rows in the forward
    # pass (the step's catalogue is the touched rows); optax then updates it in full.
    return out if any(k != "dense" for _, k in out) else ()


def build(cfg, split) -> Task:
    """GRU4Rec task on `split.train` (session-parallel over each user's sequence)."""
    model = make_model(cfg, split.num_items)
    B = cfg.train.batch_size
    counts = target_counts(split.train, split.num_items)
    if counts.sum() == 0:
        raise ConfigError("no training sequence has 2 or more events; nothing to learn from")
    cdf, log_counts = sampler_tables(counts, cfg.loss.sample_alpha)
    transitions = counts.sum()
    total_steps = int(np.ceil(transitions / B)) * cfg.train.epochs
    tx = make_optimizer(cfg.optim, total_steps)
    tables = item_tables(cfg, model)

    def init_state(rng):
        hidden = model.init_hidden(B)
        params = model.init(rng, jnp.zeros((B,), jnp.int32), hidden)["params"]
        rowwise = [name for name, kind in tables if kind != "dense"]
        dense = {k: v for k, v in params.items() if k not in rowwise}
        slots = init_slots(params, [t for t in tables if t[1] != "dense"], cfg.optim.momentum)
        return GRU4RecState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(dense),
            table_slots=slots,
            hidden=tuple(nn.LogicallyPartitioned(h, ("batch", "hidden")) for h in hidden),
            sample_cdf=jnp.asarray(cdf),
            log_counts=jnp.asarray(log_counts),
        )

    def dataset(process_index: int, process_count: int):
        per = B // process_count
        cols = slice(process_index * per, (process_index + 1) * per)
        return session_parallel_dataset(
            split.train,
            batch_size=B,
            steps_per_call=cfg.train.steps_per_call,
            epochs=cfg.train.epochs,
            seed=cfg.train.seed,
            shuffle=cfg.train.shuffle,
            columns=cols,
        )

    static = StepConfig(
        model=model,
        tx=tx,
        learning_rate=schedule(cfg.optim, total_steps),
        tables=tables,
        momentum=cfg.optim.momentum,
        loss=cfg.loss,
        final_act=cfg.model.gru4rec.final_act,
    )
    losses.final_activation(cfg.model.gru4rec.final_act, cfg.loss.kind)  # fail here, not inside jit
    return Task(
        name="gru4rec",
        needs_order=True,
        init_state=init_state,
        train_step=functools.partial(train_step, c=static),
        score=functools.partial(score, model=model),
        dataset=dataset,
        batch_axis=1,
        represent=functools.partial(represent, model=model),
        item_vectors=item_vectors,
        examples_per_epoch=int(transitions),
    )
