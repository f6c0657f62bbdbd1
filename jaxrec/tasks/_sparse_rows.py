"""Row-wise updates of item (and user) tables, shared by GRU4Rec, Caser and NextItNet.

Shapes: I rows of a table, R rows a step touches, D row width.

A step reads only the rows its batch touches: `localize` maps the batch's ids to those
rows, the model is cloned onto a catalogue of R rows, and the gradient of each table is
[R, D]. `apply_updates` then moves the dense parameters with optax and each row-wise table
with its row-wise optimizer (`jaxrec.embedding.update_rows`) on the touched rows only.
`listed_tables` is Caser's and NextItNet's choice of which tables are updated row-wise
(GRU4Rec's own default differs: `jaxrec.tasks.gru4rec.item_tables`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrec.embedding import ROW_OPTIMIZERS, gather_rows, init_row_slots, touched_rows, update_rows
from jaxrec.errors import ConfigError


class TableState(struct.PyTreeNode):
    """Train state of Caser / NextItNet.

    params: all parameters; opt_state: optax state of the dense ones; table_slots: the
    row-wise optimizer's slots per sparse table (`embedding.init_row_slots`; {} when dense);
    sample_cdf float32 [I] (cumulative popularity^alpha) and log_counts float32 [I]: the
    popularity sampler and its logQ term (one-element placeholders when unused).
    """

    step: jax.Array
    params: dict
    opt_state: optax.OptState
    table_slots: dict
    sample_cdf: jax.Array
    log_counts: jax.Array


def localize(named: dict, sizes: dict) -> tuple[dict, dict]:
    """named {name: (space, ids)} → (rows {space: unique ids int32 [R]}, {name: ids into
    those rows}); `sizes` {space: table rows}: an id of `size` or more is padding."""
    rows, local = {}, {}
    for kind, n in sizes.items():
        names = [k for k, (kd, _) in named.items() if kd == kind]
        flat = jnp.concatenate([named[k][1].reshape(-1) for k in names])
        rows[kind], inverse = touched_rows(flat, n)
        start = 0
        for k in names:
            a = named[k][1]
            local[k] = inverse[start : start + a.size].reshape(a.shape)
            start += a.size
    return rows, local


def split_params(params: dict, tables, rows: dict | None) -> tuple[dict, dict]:
    """(dense params, gathered rows of each row-wise table); tables: (name, space, kind)."""
    names = {k for k, _, _ in tables}
    dense = {k: v for k, v in params.items() if k not in names}
    return dense, {k: gather_rows(params[k], rows[space]) for k, space, _ in tables}


def apply_updates(
    state,
    *,
    tx,
    learning_rate,
    momentum,
    dense,
    g_dense,
    tables,
    g_tables,
    keep,
    weight_decay: float = 0.0,
):
    """Dense optax update + the row-wise optimizer on touched rows; a no-op when `keep` is
    False (an all-padding mini-batch at the end of an epoch).

    dense / g_dense: the parameters optax updates and their gradients; tables: (name, rows
    int32 [R], row-wise optimizer) of each row-wise table, g_tables {name: [R, D]};
    weight_decay: L2 on the touched rows only (padding rows gather zeros). Returns the
    state with `step`, `params`, `opt_state` and `table_slots` advanced.
    """
    updates, opt_state = tx.update(g_dense, state.opt_state, dense)
    new_dense = optax.apply_updates(dense, updates)
    new_dense, opt_state = jax.tree.map(
        lambda n, o: jnp.where(keep, n, o), (new_dense, opt_state), (dense, state.opt_state)
    )
    params, slots = dict(new_dense), dict(state.table_slots)
    lr = learning_rate(state.step)
    for k, rows, kind in tables:
        n = state.params[k].shape[0]
        rows = jnp.where(keep, rows, n)  # write nothing (momentum would move rows)
        grad = g_tables[k]
        if weight_decay:
            grad = grad + weight_decay * gather_rows(state.params[k], rows)
        params[k], slots[k] = update_rows(
            kind, state.params[k], slots[k], rows, grad, lr, state.step + 1, momentum
        )
    return state.replace(
        step=state.step + keep.astype(state.step.dtype),
        params=params,
        opt_state=opt_state,
        table_slots=slots,
    )


def init_slots(params: dict, tables, momentum: float) -> dict:
    """The row-wise optimizer's slots of each (name, ..., kind) table; they share their
    table's logical axes, so they are row-sharded alike."""
    return {t[0]: init_row_slots(t[-1], params[t[0]], momentum) for t in tables}


def listed_tables(cfg, names: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """(name, row space, row-wise optimizer) of the tables updated row-wise; () = dense.

    `names`: (param, "items" | "users") of the model's tables. Default: Adagrad for
    optim.name=adagrad (exact: a zero gradient moves nothing); every other optimizer dense.
    `optim.tables` picks row-wise optimizers per table (`{E: lazy_adam, ...}`, every table
    listed); then `optim.weight_decay` is an L2 term on the rows a step touches, as
    FBGEMM's row-wise optimizers apply it, not on the whole table as dense L2 does.
    `optim.clip_norm` scales every row, so it cannot be combined with `optim.tables`.
    """
    o, chosen = cfg.optim, dict(cfg.optim.tables or {})
    known = [n for n, _ in names]
    if chosen and not names:
        raise ConfigError(
            "optim.tables: this loss scores every item (full softmax), so every row moves; "
            "leave optim.tables unset"
        )
    if chosen:
        if set(chosen) != set(known):
            raise ConfigError(
                f"optim.tables {sorted(chosen)}: list every item/user table of this model, "
                f"{known}, each with one of {', '.join(ROW_OPTIMIZERS)}"
            )
        bad = {k: v for k, v in chosen.items() if v not in ROW_OPTIMIZERS}
        if bad:
            raise ConfigError(f"optim.tables {bad}: use one of {', '.join(ROW_OPTIMIZERS)}")
    if chosen and o.sparse and o.clip_norm:
        raise ConfigError(
            "optim.tables with optim.clip_norm: global-norm clipping scales every row of "
            "every table, so no table can be updated row-wise; drop one of the two"
        )
    if not o.sparse or o.clip_norm or not names:
        return ()
    if chosen:
        if o.weight_decay and o.name == "adamw":
            raise ConfigError("optim.tables with adamw: its decoupled decay has no row-wise form")
        return tuple((n, space, chosen[n]) for n, space in names)
    if o.name != "adagrad" or o.weight_decay:
        return ()
    return tuple((n, space, "adagrad") for n, space in names)
