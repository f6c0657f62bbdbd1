"""Pieces shared by the tasks that train on rows of ids (Mult-VAE/DAE, CDAE, AutoRec,
CFGAN, IRGAN): their train state, the multi-hot input built on the device, and the update
that an all-padding batch leaves undone.

Shapes: B rows of a batch, M row width, N vector width (items, or users for item rows).

Batches come from `jaxrec.data.user_rows` as padded id lists (ids [B, M] + mask), never as
dense rows, so host→device traffic follows the events; `multi_hot` makes the dense
vectors on the device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrec.config import TrainConfig
from jaxrec.data.interactions import Sequences
from jaxrec.data.user_rows import user_rows_dataset
from jaxrec.models.vae import constrain


class TrainState(struct.PyTreeNode):
    """step: updates done (drives VAE's β, IRGAN's phase and the rng); params: the model's
    ({'generator', 'discriminator'} for the GANs); opt_state: its optax state (one per GAN
    player, IRGAN adds 'pretrain')."""

    step: jax.Array
    params: dict
    opt_state: optax.OptState


def multi_hot(
    ids: jax.Array,
    mask: jax.Array,
    width: int,
    values=None,
    axes: tuple[str, str] | None = ("batch", "items"),
) -> jax.Array:
    """Rows of ids → dense float32 [B, width] on the device.

    ids int [B, M], mask bool [B, M]; values float [B, M] (e.g. ratings) or None for 1.
    A repeated id counts once, so x stays binary as vae_cf's input. axes: the logical axes
    the result is pinned to (`jaxrec.sharding.RULES`), None: left to the compiler.
    """
    rows = jnp.arange(ids.shape[0])[:, None]
    x = jnp.zeros((ids.shape[0], width), jnp.float32)
    if axes is not None:
        x = constrain(x, axes)
    if values is None:
        # Masked slots aim past the last column and are dropped: a plain write of 1, no
        # read-modify-write (cheaper than `.max` of a masked 0/1).
        x = x.at[rows, jnp.where(mask, ids, width)].set(1.0, mode="drop")
    else:
        x = x.at[rows, ids].add(jnp.where(mask, values.astype(jnp.float32), 0.0))
    return x if axes is None else constrain(x, axes)


def keep_if(keep: jax.Array, new, old):
    """`new` where `keep`, else `old`, leaf by leaf: an all-padding update moves nothing."""
    return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)


def masked_update(state: TrainState, tx: optax.GradientTransformation, grads, keep):
    """One optax update of `state.params`; undone (Adam's moments and the regularised
    weights included) and not counted in `step` when `keep` is False."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    params, opt_state = keep_if(keep, (params, opt_state), (state.params, state.opt_state))
    return state.replace(
        step=state.step + keep.astype(state.step.dtype), params=params, opt_state=opt_state
    )


def rows_dataset(rows: Sequences, train: TrainConfig, values: np.ndarray | None = None):
    """The Task's `dataset(process_index, process_count)`: `rows` in mini-batches of
    `train.batch_size`, over `train.epochs` with its seed and shuffle (values: optional
    float32 per event, e.g. AutoRec's ratings)."""

    def dataset(process_index: int, process_count: int):
        return user_rows_dataset(
            rows,
            batch_size=train.batch_size,
            epochs=train.epochs,
            seed=train.seed,
            shuffle=train.shuffle,
            values=values,
            process_index=process_index,
            process_count=process_count,
        )

    return dataset
