"""Sequential next-item task for GRU4Rec: session-parallel training with sampled negatives.

Loss and sampling follow the official GRU4Rec (Hidasi & Karatzoglou, CIKM 2018): each row's
target is scored against the other rows' targets (in-batch negatives) plus `n_sample` extra
items drawn ∝ popularity^alpha and shared by the mini-batch, logits [B, B + S]; then
cross-entropy, BPR-max or TOP1-max. One compiled call runs T mini-batches with `lax.scan`,
carrying the GRU state across them exactly as the official code carries it across
mini-batches (one step of back-propagation through time).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.training import train_state

from jaxrec import losses
from jaxrec.data.pipeline import item_counts, session_parallel_dataset
from jaxrec.errors import ConfigError
from jaxrec.models.gru4rec import GRU4Rec
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task


class SequentialState(train_state.TrainState):
    """TrainState plus the carried GRU states and the negative sampler's tables.

    hidden: per layer [B, H_l]; sample_cdf: float32 [I] cumulative popularity^alpha;
    log_q: float32 [I] log sampling probability (logQ correction).
    """

    hidden: tuple
    sample_cdf: jax.Array
    log_q: jax.Array


def final_activation(name: str):
    """The official `final_act` options applied to the logits before the loss."""
    if name == "linear":
        return lambda x: x
    if name == "tanh":
        return jnp.tanh
    if name == "relu":
        return jax.nn.relu
    kind, _, alpha = name.partition("-")
    if kind in ("elu", "leaky") and alpha:
        a = float(alpha)
        return (
            (lambda x: jax.nn.elu(x, a)) if kind == "elu" else (lambda x: jax.nn.leaky_relu(x, a))
        )
    raise ConfigError(f"model.final_act={name!r}: use linear, tanh, relu, elu-<a> or leaky-<a>")


def make_model(cfg, num_items: int) -> GRU4Rec:
    m = cfg.model
    if m.constrained_embedding and m.embedding > 0:
        raise ConfigError("model.constrained_embedding needs model.embedding=0")
    return GRU4Rec(
        num_items=num_items,
        layers=tuple(m.layers),
        embedding=m.embedding,
        constrained_embedding=m.constrained_embedding,
        dropout_embed=m.dropout_embed,
        dropout_hidden=m.dropout_hidden,
        dtype=jnp.dtype(m.compute_dtype),
    )


def sampler_tables(counts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(cdf, log q) of sampling items ∝ count^alpha; unseen items are never sampled."""
    w = np.where(counts > 0, counts, 0.0) ** alpha * (counts > 0)
    q = w / w.sum()
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    return np.cumsum(q).astype(np.float32), np.maximum(log_q, -1e4).astype(np.float32)


def train_step(state: SequentialState, batch, rng, *, model: GRU4Rec, loss_cfg, final_act):
    """T session-parallel updates. batch: inputs/targets int32 [T, B], reset/valid bool [T, B]."""
    act = final_activation(final_act)

    def one(state, mb):
        key = jax.random.fold_in(rng, state.step)
        k_sample, k_drop = jax.random.split(key)
        valid = mb["valid"]
        hidden = tuple(jnp.where(mb["reset"][:, None], 0.0, h) for h in state.hidden)
        u = jax.random.uniform(k_sample, (loss_cfg.n_sample,)) * state.sample_cdf[-1]
        negatives = jnp.searchsorted(state.sample_cdf, u, side="right").astype(jnp.int32)
        negatives = jnp.minimum(negatives, state.sample_cdf.shape[0] - 1)
        cols = jnp.concatenate([mb["targets"], negatives])

        def loss_fn(params):
            new_hidden, out = state.apply_fn(
                {"params": params}, mb["inputs"], hidden, train=True, rngs={"dropout": k_drop}
            )
            logits = state.apply_fn({"params": params}, out, cols, method="score")
            loss = losses.gru4rec_loss(
                act(logits),
                valid,
                kind=loss_cfg.kind,
                bpreg=loss_cfg.bpreg,
                log_q=loss_cfg.logq * state.log_q[cols],
            )
            return loss, new_hidden

        (loss, new_hidden), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updated = state.apply_gradients(grads=grads)
        # An all-padding mini-batch (end of epoch) must not move the optimizer state.
        keep = valid.any()
        updated = jax.tree.map(lambda n, o: jnp.where(keep, n, o), updated, state)
        updated = updated.replace(hidden=tuple(jax.lax.stop_gradient(h) for h in new_hidden))
        n = valid.sum()
        return updated, (jnp.where(n > 0, loss, 0.0) * n, n)

    state, (loss_sums, counts) = jax.lax.scan(one, state, batch)
    total = counts.sum()
    return state, {"loss": loss_sums.sum() / jnp.maximum(total, 1), "examples": total}


def score(params, users, hist_ids, hist_mask, *, model: GRU4Rec):
    """Full-catalogue scores after reading each history: float32 [B, I]."""
    del users
    out = model.apply({"params": params}, hist_ids, hist_mask, method="encode")
    return model.apply({"params": params}, out, method="score")


def build(cfg, split) -> Task:
    """GRU4Rec task on `split.train` (session-parallel over each user's sequence)."""
    model = make_model(cfg, split.num_items)
    B = cfg.train.batch_size
    counts = item_counts(split.train, split.num_items)
    if counts.sum() == 0:
        raise ConfigError("no training sequence has 2 or more events; nothing to learn from")
    cdf, log_q = sampler_tables(counts, cfg.loss.sample_alpha)
    transitions = counts.sum()
    total_steps = int(np.ceil(transitions / B)) * cfg.train.epochs
    tx = make_optimizer(cfg.optim, total_steps)

    def init_state(rng):
        hidden = model.init_hidden(B)
        params = model.init(rng, jnp.zeros((B,), jnp.int32), hidden)["params"]
        boxed_hidden = tuple(nn.LogicallyPartitioned(h, ("batch", "hidden")) for h in hidden)
        return SequentialState.create(
            apply_fn=model.apply,
            params=params,
            tx=tx,
            hidden=boxed_hidden,
            sample_cdf=jnp.asarray(cdf),
            log_q=jnp.asarray(log_q),
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

    step = functools.partial(
        train_step, model=model, loss_cfg=cfg.loss, final_act=cfg.model.final_act
    )
    return Task(
        name="gru4rec",
        init_state=init_state,
        train_step=step,
        score=functools.partial(score, model=model),
        dataset=dataset,
        batch_axis=1,
    )
