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
    eps: float = 1e-6,
) -> tuple[jax.Array, jax.Array]:
    """Adagrad on the touched rows only: acc += g²; w -= lr · g / (√acc + eps).

    table, accumulator: [R, ...]; rows: unique int32 [N] (padding = R); grad: [N, ...].
    Rows not in `rows` keep their values and accumulators bit for bit.
    """
    acc = gather_rows(accumulator, rows) + jnp.square(grad)
    new = gather_rows(table, rows) - learning_rate * grad / (jnp.sqrt(acc) + eps)
    return (
        table.at[rows].set(new.astype(table.dtype), mode="drop"),
        accumulator.at[rows].set(acc, mode="drop"),
    )
