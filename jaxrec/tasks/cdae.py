"""CDAE (Wu et al., WSDM 2016) as a task: loss, `init_state`, `train_step`, `score`,
`dataset` and `build`.

Shapes: B batch of users, M row width, I items, H hidden units.

Training reads mini-batches of user rows (`jaxrec.data.user_rows`), turned into the
multi-hot x [B, I] on the device (`_user_rows.multi_hot`); padding rows are left out of
the loss mean and an all-padding batch moves nothing.

Loss: logistic (or squared) loss summed over the user's items, either over the whole
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

from jaxrec import losses
from jaxrec.errors import ConfigError
from jaxrec.models.cdae import ACTIVATIONS, CDAE
from jaxrec.models.vae import constrain
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task
from jaxrec.tasks._user_rows import TrainState, masked_update, multi_hot, rows_dataset


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static pieces of the step, bound with functools.partial before jit."""

    model: CDAE
    tx: optax.GradientTransformation
    l2: float
    loss: str = "logistic"  # or squared
    output_activation: str = "sigmoid"
    negatives: int = 0


def sq_all(params) -> jax.Array:
    """Σ‖θ‖² over every parameter."""
    return sum(jnp.sum(jnp.square(v)) for v in jax.tree.leaves(params))


def negative_weights(key, x: jax.Array, negatives: int) -> jax.Array:
    """[B, I] 0/1 weights of the sampled negatives: each unobserved item of row u is drawn
    with probability negatives·|u| / (I − |u|) (at most 1), so a row gets `negatives` × its
    positives on average, without replacement: the paper's subset S_u of unobserved items.

    One uniform per cell, O(B·I) like the full output that it weights: drawing
    negatives × M ids per row and scattering them into [B, I] is several times slower.
    """
    n_pos = x.sum(-1, keepdims=True)
    p = jnp.minimum(1.0, negatives * n_pos / jnp.maximum(x.shape[1] - n_pos, 1.0))
    keep = jax.random.uniform(key, x.shape) < p
    return constrain(jnp.where(keep, 1.0 - x, 0.0), ("batch", "items"))


def per_row_loss(params, batch, x, keys, c: StepConfig):
    """Per-user loss [B] of the multi-hot rows x [B, I]; keys: (dropout, negatives)."""
    k_drop, k_neg = keys
    logits, _ = c.model.apply(
        {"params": params}, x, batch["users"], train=True, rngs={"dropout": k_drop}
    )
    if c.loss == "logistic":
        # −y·log σ(l) − (1−y)·log(1−σ(l)) = softplus(l) − y·l: one softplus per cell where
        # optax's form takes two log-sigmoids.
        per_item = jax.nn.softplus(logits) - x * logits
    else:
        per_item = jnp.square(ACTIVATIONS[c.output_activation](logits) - x)
    if c.negatives:
        weight = x + negative_weights(k_neg, x, c.negatives)
        per_item = per_item * weight
    return per_item.sum(-1)


def train_step(state: TrainState, batch, rng, *, c: StepConfig):
    """One update on a mini-batch of user rows: users int32 [B], ids int32 [B, M], mask bool
    [B, M], valid bool [B] → (state, {loss: mean per valid user, examples, beta, kl})."""
    key = jax.random.fold_in(rng, state.step)
    k_drop, _, k_neg = jax.random.split(key, 3)  # as Mult-VAE's step (its second: sampling)
    valid = batch["valid"]
    x = multi_hot(batch["ids"], batch["mask"] & valid[:, None], c.model.num_items)

    def loss_fn(params):
        data = losses.masked_row_mean(per_row_loss(params, batch, x, (k_drop, k_neg), c), valid)
        reg = 0.5 * c.l2 * sq_all(params) if c.l2 else 0.0  # the paper's R = λ/2 · Σ‖θ‖²
        return data + reg, data

    (_, data), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = masked_update(state, c.tx, grads, valid.any())
    # beta and kl: Mult-VAE's metrics, zero here, so that every autoencoder logs one set.
    zero = jnp.zeros((), jnp.float32)
    return state, {"loss": data, "examples": valid.sum(), "beta": zero, "kl": zero}


def _forward(params, users, hist_ids, hist_mask, model: CDAE):
    """(logits [B, I], hidden z [B, H]) of the users' input rows, deterministic."""
    return model.apply({"params": params}, multi_hot(hist_ids, hist_mask, model.num_items), users)


def score(params, users, hist_ids, hist_mask, *, model: CDAE):
    """Scores of every item from the user's input row (hist_ids, left-padded): float32 [B, I]."""
    return _forward(params, users, hist_ids, hist_mask, model)[0]


def represent(params, users, hist_ids, hist_mask, *, model: CDAE):
    """The hidden layer z [B, H]."""
    return _forward(params, users, hist_ids, hist_mask, model)[1]


def item_vectors(params):
    """The decoder's output weights, one row per item: [I, H]."""
    return params["dec"]["kernel"].T


def build(cfg, split) -> Task:
    """CDAE on the rows of `split.train` (the config's choices are checked by `load_config`)."""
    c = cfg.model.cdae
    model = CDAE(
        split.num_items,
        split.num_users,
        c.hidden,
        c.corruption,
        c.hidden_activation,
        jnp.dtype(cfg.model.compute_dtype),
    )
    B = cfg.train.batch_size
    train_users = int(np.count_nonzero(split.train.lengths))
    if train_users == 0:
        raise ConfigError("no user has a training event: nothing to learn from")
    tx = make_optimizer(cfg.optim, -(-train_users // B) * cfg.train.epochs)

    def init_state(rng):
        x = jnp.zeros((B, split.num_items), jnp.float32)
        params = model.init(rng, x, jnp.zeros((B,), jnp.int32))["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    dataset = rows_dataset(split.train, cfg.train)

    static = StepConfig(model, tx, c.l2, c.loss, c.output_activation, c.negatives)
    return Task(
        name="cdae",
        init_state=init_state,
        train_step=functools.partial(train_step, c=static),
        score=functools.partial(score, model=model),
        dataset=dataset,
        batch_axis=0,
        represent=functools.partial(represent, model=model),
        item_vectors=item_vectors,
        examples_per_epoch=train_users,
    )
