"""Autoencoder task: Mult-VAE / Mult-DAE (Liang et al., WWW 2018), CDAE (Wu et al., WSDM 2016)
and I-AutoRec (Sedhain et al., WWW 2015, in `jaxrec.tasks.autorec`).

Shapes: B batch of users, M row width, I items, U users, D latent/hidden size.

Training reads mini-batches of user rows (`jaxrec.data.user_rows`): item ids [B, M] + mask,
never a dense row. The multi-hot x [B, I] is built on the device inside the step
(`multi_hot`), pinned to the logical axes (batch, items), so host→device traffic follows
the events. Padding rows (`valid` False) have an empty row and are left out of the loss
mean, so they add nothing to the gradient; an all-padding batch moves nothing.

Mult-VAE/DAE, as vae_cf: loss per user = -Σ_i x_i log softmax(f(x))_i (+ β·KL for the VAE),
averaged over the users of the batch, + l2 · Σ‖W‖² over the weight matrices (vae_cf adds
2 · l2_regularizer(lam) = lam · Σ‖W‖²). β = min(cap, step / anneal_steps) comes from
`state.step`, the update count (vae_cf's `update_count`), so resuming keeps the schedule.

CDAE: logistic (or squared) loss summed over the user's items, either over the whole
catalogue (`negatives=0`) or over the positives plus about `negatives` × |row| items drawn
uniformly, without replacement, among the user's unobserved items (the paper's negative
sampling); + λ/2 · Σ‖θ‖².
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrec import losses, threefry
from jaxrec.data.user_rows import user_rows_dataset
from jaxrec.errors import ConfigError
from jaxrec.models.cdae import ACTIVATIONS, CDAE
from jaxrec.models.vae import MultVAE, constrain
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task


class AEState(struct.PyTreeNode):
    """step: updates done (drives β and the rng); params; opt_state (optax)."""

    step: jax.Array
    params: dict
    opt_state: optax.OptState


def multi_hot(ids: jax.Array, mask: jax.Array, num_items: int, values=None) -> jax.Array:
    """Rows of item ids → dense float32 [B, I] on the device, sharded (batch, items).

    ids int [B, M], mask bool [B, M]; values float [B, M] (e.g. ratings) or None for 1.
    A repeated id counts once, so x stays binary as vae_cf's input.
    """
    rows = jnp.arange(ids.shape[0])[:, None]
    x = constrain(jnp.zeros((ids.shape[0], num_items), jnp.float32), ("batch", "items"))
    if values is None:
        # Masked slots aim past the last item and are dropped: a plain write of 1, no
        # read-modify-write (CDAE's batch, [256, 973] ids → [256, 2,810]: 1.35–1.92 → 0.78–1.01
        # ms against `.max` of a masked 0/1, 2-core CPU, 2026-12-02).
        x = x.at[rows, jnp.where(mask, ids, num_items)].set(1.0, mode="drop")
    else:
        x = x.at[rows, ids].add(jnp.where(mask, values.astype(jnp.float32), 0.0))
    return constrain(x, ("batch", "items"))


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static pieces of the step, bound with functools.partial before jit."""

    model: object  # MultVAE | CDAE
    tx: optax.GradientTransformation
    kind: str  # vae | dae | cdae
    l2: float
    anneal_steps: int = 1
    anneal_cap: float = 0.0
    cdae_loss: str = "logistic"
    output_activation: str = "sigmoid"
    negatives: int = 0


def _sq_kernels(params) -> jax.Array:
    """Σ‖W‖² over the weight matrices (kernels), as vae_cf regularises (no biases)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(jnp.sum(jnp.square(v)) for p, v in leaves if "kernel" in jax.tree_util.keystr(p))


def _sq_all(params) -> jax.Array:
    return sum(jnp.sum(jnp.square(v)) for v in jax.tree.leaves(params))


def _negative_weights(key, x: jax.Array, negatives: int) -> jax.Array:
    """[B, I] 0/1 weights of the sampled negatives: each unobserved item of row u is drawn
    with probability negatives·|u| / (I − |u|) (at most 1), so a row gets `negatives` × its
    positives on average, without replacement: the paper's subset S_u of unobserved items.

    One uniform per cell, O(B·I) like the full output that it weights. Drawing negatives × M
    ids per row and scattering them into [B, I] made the step 2.6–4.7× slower (two bench
    runs) than the full output on ML-1M clean (batch 256 users, M up to the longest row;
    2-core CPU); this form runs at the full output's speed (11.1 vs 14.2 ms).
    """
    n_pos = x.sum(-1, keepdims=True)
    p = jnp.minimum(1.0, negatives * n_pos / jnp.maximum(x.shape[1] - n_pos, 1.0))
    keep = threefry.uniform(key, x.shape) < p  # jax.random's draw, faster on CPU
    return constrain(jnp.where(keep, 1.0 - x, 0.0), ("batch", "items"))


def _per_row_loss(params, batch, x, keys, c: StepConfig, beta):
    """(per-user loss [B], per-user KL [B] or zeros)."""
    k_drop, k_sample, k_neg = keys
    if c.kind in ("vae", "dae"):
        rngs = {"dropout": k_drop, "sample": k_sample}
        logits, mu, logvar = c.model.apply({"params": params}, x, train=True, rngs=rngs)
        nll = losses.multinomial_nll(logits, x)
        if c.kind == "dae":
            return nll, jnp.zeros_like(nll)
        kl = losses.gaussian_kl(mu, logvar)
        return nll + beta * kl, kl
    logits, _ = c.model.apply(
        {"params": params}, x, batch["users"], train=True, rngs={"dropout": k_drop}
    )
    if c.cdae_loss == "logistic":
        # −y·log σ(l) − (1−y)·log(1−σ(l)) = softplus(l) − y·l: one softplus per cell where
        # optax's form takes two log-sigmoids (CDAE step 13.4 → 9.9 ms with threefry's draws).
        per_item = jax.nn.softplus(logits) - x * logits
    else:
        per_item = jnp.square(ACTIVATIONS[c.output_activation](logits) - x)
    if c.negatives:
        weight = x + _negative_weights(k_neg, x, c.negatives)
        per_item = per_item * weight
    per_row = per_item.sum(-1)
    return per_row, jnp.zeros_like(per_row)


def train_step(state: AEState, batch, rng, *, c: StepConfig):
    """One update on a mini-batch of user rows: users int32 [B], ids int32 [B, M], mask bool
    [B, M], valid bool [B] → (state, {loss: mean per valid user, examples, beta, kl})."""
    key = jax.random.fold_in(rng, state.step)
    keys = jax.random.split(key, 3)
    valid = batch["valid"]
    num_items = c.model.num_items
    x = multi_hot(batch["ids"], batch["mask"] & valid[:, None], num_items)
    beta = losses.kl_anneal(state.step, c.anneal_steps, c.anneal_cap)

    def loss_fn(params):
        per_row, kl = _per_row_loss(params, batch, x, keys, c, beta)
        data = losses.masked_row_mean(per_row, valid)
        if c.kind == "cdae":  # the paper's R = λ/2 · Σ‖θ‖² over every parameter
            reg = 0.5 * c.l2 * _sq_all(params) if c.l2 else 0.0
        else:
            reg = c.l2 * _sq_kernels(params) if c.l2 else 0.0
        return data + reg, (data, losses.masked_row_mean(kl, valid))

    (_, (data, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = c.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # An all-padding batch must not move Adam's moments or the regularised weights.
    keep = valid.any()
    params, opt_state = jax.tree.map(
        lambda n, o: jnp.where(keep, n, o),
        (params, opt_state),
        (state.params, state.opt_state),
    )
    state = state.replace(
        step=state.step + keep.astype(state.step.dtype), params=params, opt_state=opt_state
    )
    metrics = {"loss": data, "examples": valid.sum(), "beta": beta, "kl": kl}
    return state, metrics


def _forward(params, users, hist_ids, hist_mask, *, model, kind):
    """(logits [B, I], representation [B, D]) of the users' input rows, deterministic."""
    x = multi_hot(hist_ids, hist_mask, model.num_items)
    if kind == "cdae":
        return model.apply({"params": params}, x, users)
    logits, mu, _ = model.apply({"params": params}, x)
    return logits, mu


def score(params, users, hist_ids, hist_mask, *, model, kind):
    """Scores of every item from the user's input row (hist_ids, left-padded): float32 [B, I]."""
    return _forward(params, users, hist_ids, hist_mask, model=model, kind=kind)[0]


def represent(params, users, hist_ids, hist_mask, *, model, kind):
    """VAE: posterior mean μ [B, D]; DAE: the bottleneck; CDAE: the hidden layer z."""
    return _forward(params, users, hist_ids, hist_mask, model=model, kind=kind)[1]


def item_vectors(params, *, layer):
    """The decoder's output weights, one row per item: [I, H]."""
    return params[layer]["kernel"].T


def make_model(cfg, split):
    name, dtype = cfg.model.name, jnp.dtype(cfg.model.compute_dtype)
    if name in ("multvae", "multdae"):
        v = cfg.model.vae
        if not v.layers:
            raise ConfigError("model.vae.layers needs at least one width, e.g. [600, 200]")
        model = MultVAE(split.num_items, tuple(v.layers), v.dropout, name == "multvae", dtype)
        return model, ("vae" if name == "multvae" else "dae"), f"dec_{len(v.layers) - 1}"
    c = cfg.model.cdae
    for what, act in (("hidden", c.hidden_activation), ("output", c.output_activation)):
        if act not in ACTIVATIONS:
            raise ConfigError(
                f"model.cdae.{what}_activation={act!r}: use one of {', '.join(ACTIVATIONS)}"
            )
    if c.loss not in ("logistic", "squared"):
        raise ConfigError(f"model.cdae.loss={c.loss!r}: use logistic or squared")
    if c.loss == "logistic" and c.output_activation != "sigmoid":
        raise ConfigError("model.cdae.loss=logistic needs model.cdae.output_activation=sigmoid")
    model = CDAE(
        split.num_items, split.num_users, c.hidden, c.corruption, c.hidden_activation, dtype
    )
    return model, "cdae", "dec"


def build(cfg, split, events=None) -> Task:
    """The autoencoder named by cfg.model.name, trained on the rows of `split.train`
    (AutoRec: on its own split of `events`' ratings)."""
    if cfg.model.name == "autorec":
        from jaxrec.tasks import autorec

        return autorec.build(cfg, split, events)
    model, kind, out_layer = make_model(cfg, split)
    B = cfg.train.batch_size
    train_users = int(np.count_nonzero(split.train.lengths))
    if train_users == 0:
        raise ConfigError("no user has a training event: nothing to learn from")
    total_steps = -(-train_users // B) * cfg.train.epochs
    tx = make_optimizer(cfg.optim, total_steps)

    def init_state(rng):
        x = jnp.zeros((B, split.num_items), jnp.float32)
        args = (x,) if kind != "cdae" else (x, jnp.zeros((B,), jnp.int32))
        params = model.init(rng, *args)["params"]
        return AEState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    def dataset(process_index: int, process_count: int):
        return user_rows_dataset(
            split.train,
            batch_size=B,
            epochs=cfg.train.epochs,
            seed=cfg.train.seed,
            shuffle=cfg.train.shuffle,
            process_index=process_index,
            process_count=process_count,
        )

    if kind == "cdae":
        c = cfg.model.cdae
        static = StepConfig(
            model, tx, kind, c.l2, cdae_loss=c.loss,
            output_activation=c.output_activation, negatives=c.negatives,
        )  # fmt: skip
    else:
        v = cfg.model.vae
        static = StepConfig(model, tx, kind, v.l2, v.anneal_steps, v.anneal_cap)
    bind = functools.partial
    return Task(
        name=cfg.model.name,
        init_state=init_state,
        train_step=bind(train_step, c=static),
        score=bind(score, model=model, kind=kind),
        dataset=dataset,
        batch_axis=0,
        represent=bind(represent, model=model, kind=kind),
        item_vectors=bind(item_vectors, layer=out_layer),
        examples_per_epoch=train_users,
    )
