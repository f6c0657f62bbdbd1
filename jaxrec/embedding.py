"""Sparse row-wise updates of item tables: the cost of a step follows the batch, not the catalogue.

A step gathers the rows its ids touch (`touched_rows`: `unique` with a static size, padded
with an out-of-range id), differentiates the loss with respect to those rows only, and
writes the updated rows back with `.at[rows].set(mode="drop")` into donated buffers, so the
rows (and optimizer slots) nobody touched are neither read nor written. This is what the
official GRU4Rec does with its indexed Adagrad, and what TorchRec's fused row-wise
optimizers do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def touched_rows(ids: jax.Array, num_rows: int) -> tuple[jax.Array, jax.Array]:
    """Unique ids of `ids` [N] → (rows int32 [N], inverse int32 [N]) with rows[inverse] == ids.

    The padding slots of `rows` hold `num_rows` (out of range): gathers read zeros there and
    scatters drop them.
    """
    rows, inverse = jnp.unique(
        ids.reshape(-1), size=ids.size, fill_value=num_rows, return_inverse=True
    )
    return rows.astype(jnp.int32), inverse.reshape(ids.shape).astype(jnp.int32)


def gather_rows(table: jax.Array, rows: jax.Array) -> jax.Array:
    """table [R, ...] → [N, ...]; out-of-range rows read as zeros."""
    return jnp.take(table, rows, axis=0, mode="fill", fill_value=0)


def adagrad_rows(
    table: jax.Array,
    accumulator: jax.Array,
    rows: jax.Array,
    grad: jax.Array,
    learning_rate: jax.Array | float,
    momentum: float = 0.0,
    velocity: jax.Array | None = None,
    eps: float = 1e-6,
):
    """Adagrad (with optional heavy-ball momentum) on the touched rows only.

    The official GRU4Rec `IndexedAdagradM`: acc += g²; u = g / √(acc + eps); without
    momentum w -= lr·u, with it v = m·v − lr·u and w += v, where acc and v of untouched rows
    are left alone (lazy). table, accumulator, velocity: [R, ...]; rows: unique int32 [N]
    (padding = R); grad: [N, ...] (duplicates already summed).
    Returns (table, accumulator, velocity); rows not in `rows` are bit-identical.
    """
    acc = gather_rows(accumulator, rows) + jnp.square(grad)
    step = learning_rate * grad / jnp.sqrt(acc + eps)
    if momentum:
        v = momentum * gather_rows(velocity, rows) - step
        velocity = velocity.at[rows].set(v, mode="drop")
        step = -v
    new = gather_rows(table, rows) - step
    return (
        table.at[rows].set(new.astype(table.dtype), mode="drop"),
        accumulator.at[rows].set(acc, mode="drop"),
        velocity,
    )
