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

from jaxrec import sharding


def touched_rows(ids: jax.Array, num_rows: int) -> tuple[jax.Array, jax.Array]:
    """Unique ids of `ids` [N] → (rows int32 [min(N, num_rows + 1)], inverse int32 [N]) with
    rows[inverse] == ids.

    The padding slots of `rows` hold `num_rows` (out of range): gathers read zeros there and
    scatters drop them.
    """
    # At most num_rows + 1 distinct values (the + 1: padding ids equal to num_rows), so a
    # batch naming more ids than that (over a small catalogue) moves no more rows.
    size = min(ids.size, num_rows + 1)
    rows, inverse = jnp.unique(ids.reshape(-1), size=size, fill_value=num_rows, return_inverse=True)
    return rows.astype(jnp.int32), inverse.reshape(ids.shape).astype(jnp.int32)


def gather_rows(table: jax.Array, rows: jax.Array) -> jax.Array:
    """table [R, ...] → [N, ...]; out-of-range rows read as zeros. Row-sharded tables are
    read shard-locally (`sharding.lookup`)."""
    return sharding.lookup(table, rows)


def dot_rows(x: jax.Array, table: jax.Array) -> jax.Array:
    """x [..., D] · table [R, D] → float32 [..., R]: every row's dot product, i.e. `x @ table.T`.

    Written as one `dot_general` that contracts the tables' last axis, never `x @ table.T`:
    with a bias added after it, XLA's CPU backend fuses `dot(x, transpose(table)) + b` by
    copying the whole transposed table on every call when x is a single row (an order of
    magnitude slower on a large table; equal from a few rows up). That single-row case is a
    service's one-request latency.
    """
    dims = (((x.ndim - 1,), (1,)), ((), ()))
    return jax.lax.dot_general(x, table, dims, preferred_element_type=jnp.float32)


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


def lazy_adam_rows(
    table: jax.Array,
    m: jax.Array,
    v: jax.Array,
    rows: jax.Array,
    grad: jax.Array,
    learning_rate: jax.Array | float,
    count: jax.Array,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
):
    """Lazy Adam (TF's LazyAdamOptimizer, TorchRec's row-wise Adam) on the touched rows only.

    Touched rows get exactly optax.adam's update: m = b1·m + (1−b1)·g, v = b2·v + (1−b2)·g²,
    w −= lr · m̂ / (√v̂ + eps) with the bias corrections of the global step `count` (the
    number of updates so far, this one included). Untouched rows and their moments stay
    bit-identical, where dense Adam would keep moving them with their old momentum: that is
    the one difference from optax.adam, and why a row touched at every step matches it.
    table, m, v: [R, ...]; rows: unique int32 [N] (padding = R); grad: [N, ...].
    Returns (table, m, v).
    """
    count = jnp.asarray(count, jnp.float32)
    m_rows = b1 * gather_rows(m, rows) + (1 - b1) * grad
    v_rows = b2 * gather_rows(v, rows) + (1 - b2) * jnp.square(grad)
    m_hat = m_rows / (1 - b1**count)
    v_hat = v_rows / (1 - b2**count)
    new = gather_rows(table, rows) - learning_rate * m_hat / (jnp.sqrt(v_hat) + eps)
    return (
        table.at[rows].set(new.astype(table.dtype), mode="drop"),
        m.at[rows].set(m_rows, mode="drop"),
        v.at[rows].set(v_rows, mode="drop"),
    )


ROW_OPTIMIZERS = ("adagrad", "lazy_adam")


def init_row_slots(kind: str, table: jax.Array, momentum: float = 0.0) -> dict:
    """Optimizer slots of one table for the row-wise optimizer `kind`, shaped like the table
    (so they share its logical axes and row sharding)."""
    zeros = jax.tree.map(jnp.zeros_like, table)
    if kind == "adagrad":
        return {"acc": zeros, **({"mom": jax.tree.map(jnp.zeros_like, table)} if momentum else {})}
    if kind == "lazy_adam":
        return {"m": zeros, "v": jax.tree.map(jnp.zeros_like, table)}
    raise ValueError(f"unknown row-wise optimizer {kind!r}; known: {ROW_OPTIMIZERS}")


def update_rows(kind, table, slots: dict, rows, grad, learning_rate, count, momentum=0.0):
    """One row-wise update of `table` with optimizer `kind` → (table, slots).

    count: the global update number (1 for the first update), for Adam's bias correction.
    """
    if kind == "adagrad":
        table, acc, mom = adagrad_rows(
            table, slots["acc"], rows, grad, learning_rate, momentum, slots.get("mom")
        )
        return table, {"acc": acc, **({"mom": mom} if momentum else {})}
    table, m, v = lazy_adam_rows(table, slots["m"], slots["v"], rows, grad, learning_rate, count)
    return table, {"m": m, "v": v}
