"""Mult-VAE and Mult-DAE (Liang et al., WWW 2018; dawenl/vae_cf) as tasks: loss,
`init_state`, `train_step`, `score`, `dataset` and `build`.

Shapes: B batch of users, M row width, I items, D latent size.

Training reads mini-batches of user rows (`jaxrec.data.user_rows`): item ids [B, M] + mask,
never a dense row. The multi-hot x [B, I] is built on the device inside the step
(`_user_rows.multi_hot`), pinned to the logical axes (batch, items), so host→device
traffic follows the events. Padding rows (`valid` False) have an empty row and are left
out of the loss mean, so they add nothing to the gradient; an all-padding batch moves
nothing.

Loss per user, as vae_cf: -Σ_i x_i log softmax(f(x))_i (+ β·KL for the VAE), averaged
over the users of the batch, + l2 · Σ‖W‖² over the weight matrices (vae_cf adds
2 · l2_regularizer(lam) = lam · Σ‖W‖²). β = min(cap, step / anneal_steps) comes from
`state.step`, the update count (vae_cf's `update_count`), so resuming keeps the schedule.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec import losses
from jaxrec.errors import ConfigError
from jaxrec.models.vae import MultVAE
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task
from jaxrec.tasks._user_rows import TrainState, masked_update, multi_hot, rows_dataset


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static pieces of the step, bound with functools.partial before jit."""

    model: MultVAE
    tx: optax.GradientTransformation
    variational: bool  # Mult-VAE; False: Mult-DAE
    l2: float
    anneal_steps: int = 1
    anneal_cap: float = 0.0


def sq_kernels(params) -> jax.Array:
    """Σ‖W‖² over the weight matrices (kernels), as vae_cf regularises (no biases)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(jnp.sum(jnp.square(v)) for p, v in leaves if "kernel" in jax.tree_util.keystr(p))


def per_row_loss(params, x, keys, c: StepConfig, beta):
    """(per-user loss [B], per-user KL [B] or zeros) of the multi-hot rows x [B, I];
    keys: (dropout, sample) rng keys."""
    k_drop, k_sample = keys
    rngs = {"dropout": k_drop, "sample": k_sample}
    logits, mu, logvar = c.model.apply({"params": params}, x, train=True, rngs=rngs)
    nll = losses.multinomial_nll(logits, x)
    if not c.variational:
        return nll, jnp.zeros_like(nll)
    kl = losses.gaussian_kl(mu, logvar)
    return nll + beta * kl, kl


def train_step(state: TrainState, batch, rng, *, c: StepConfig):
    """One update on a mini-batch of user rows: users int32 [B], ids int32 [B, M], mask bool
    [B, M], valid bool [B] → (state, {loss: mean per valid user, examples, beta, kl})."""
    key = jax.random.fold_in(rng, state.step)
    keys = jax.random.split(key, 3)  # as CDAE's step, whose third key draws negatives
    valid = batch["valid"]
    x = multi_hot(batch["ids"], batch["mask"] & valid[:, None], c.model.num_items)
    beta = losses.kl_anneal(state.step, c.anneal_steps, c.anneal_cap)

    def loss_fn(params):
        per_row, kl = per_row_loss(params, x, keys[:2], c, beta)
        data = losses.masked_row_mean(per_row, valid)
        reg = c.l2 * sq_kernels(params) if c.l2 else 0.0
        return data + reg, (data, losses.masked_row_mean(kl, valid))

    (_, (data, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = masked_update(state, c.tx, grads, valid.any())
    return state, {"loss": data, "examples": valid.sum(), "beta": beta, "kl": kl}


def _forward(params, hist_ids, hist_mask, model: MultVAE):
    """(logits [B, I], μ [B, D]) of the users' input rows, deterministic."""
    logits, mu, _ = model.apply({"params": params}, multi_hot(hist_ids, hist_mask, model.num_items))
    return logits, mu


def score(params, users, hist_ids, hist_mask, *, model: MultVAE):
    """Scores of every item from the user's input row (hist_ids, left-padded): float32 [B, I]."""
    del users
    return _forward(params, hist_ids, hist_mask, model)[0]


def represent(params, users, hist_ids, hist_mask, *, model: MultVAE):
    """VAE: posterior mean μ [B, D]; DAE: the bottleneck."""
    del users
    return _forward(params, hist_ids, hist_mask, model)[1]


def item_vectors(params, *, layer: str):
    """The decoder's output weights, one row per item: [I, H]."""
    return params[layer]["kernel"].T


def build(cfg, split) -> Task:
    """Mult-VAE (model.name=multvae) or Mult-DAE (multdae) on the rows of `split.train`."""
    v, variational = cfg.model.vae, cfg.model.name == "multvae"
    model = MultVAE(
        split.num_items, tuple(v.layers), v.dropout, variational, jnp.dtype(cfg.model.compute_dtype)
    )
    B = cfg.train.batch_size
    train_users = int(np.count_nonzero(split.train.lengths))
    if train_users == 0:
        raise ConfigError("no user has a training event: nothing to learn from")
    tx = make_optimizer(cfg.optim, -(-train_users // B) * cfg.train.epochs)

    def init_state(rng):
        params = model.init(rng, jnp.zeros((B, split.num_items), jnp.float32))["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    dataset = rows_dataset(split.train, cfg.train)

    static = StepConfig(model, tx, variational, v.l2, v.anneal_steps, v.anneal_cap)
    return Task(
        name=cfg.model.name,
        init_state=init_state,
        train_step=functools.partial(train_step, c=static),
        score=functools.partial(score, model=model),
        dataset=dataset,
        batch_axis=0,
        represent=functools.partial(represent, model=model),
        item_vectors=functools.partial(item_vectors, layer=f"dec_{len(v.layers) - 1}"),
        examples_per_epoch=train_users,
    )
