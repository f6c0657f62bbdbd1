"""GRU4Rec: Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018 (hidasib/GRU4Rec).

A stack of GRU layers reads one item per step; the last layer's state, after dropout, is
scored against an output item embedding `Wy` [I, H] plus a bias `By` [I] (the official
code's output layer). Input styles, as in the official implementation:

- `embedding > 0`: a separate input embedding [I, E] feeds the first GRU layer;
- `constrained_embedding`: the input embedding *is* `Wy` (needs embedding = 0);
- otherwise one-hot input: the first layer's input weights are an [I, 3H] table indexed by
  item id (a one-hot row times a matrix is a row lookup).

The GRU follows Cho et al. 2014, as the official code does: the reset gate scales the state
before its matmul, h' = (1 - z)·h + z·tanh(W_x x + W_h (r·h) + b).
Weights use the official init: uniform(±sqrt(6 / (rows + cols / gates))).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.embedding import dot_rows, gather_rows


def _official_init(gates: int = 1):
    """uniform(-s, s), s = sqrt(6 / (fan_in + fan_out / gates)), per the official init."""

    def init(key, shape, dtype=jnp.float32):
        s = jnp.sqrt(6.0 / (shape[0] + shape[1] / gates))
        return jax.random.uniform(key, shape, dtype, -s, s)

    return init


def _param(module, name, init, shape, axes):
    return module.param(name, nn.with_logical_partitioning(init, axes), shape)


class GRU4Rec(nn.Module):
    """Shapes: B batch, L length, H hidden (last layer), I items, C candidate columns."""

    num_items: int
    layers: tuple[int, ...] = (100,)
    embedding: int = 0
    constrained_embedding: bool = True
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.0
    dtype: jnp.dtype = jnp.float32  # compute dtype of the GRU matmuls

    def setup(self):
        H, I = self.layers[-1], self.num_items
        self.Wy = _param(self, "Wy", _official_init(), (I, H), ("items", "embed"))
        self.By = _param(self, "By", nn.initializers.zeros, (I,), ("items",))
        first = self.layers[0]
        if self.embedding > 0:
            self.E = _param(self, "E", _official_init(), (I, self.embedding), ("items", "embed"))
            in_dim = self.embedding
        elif self.constrained_embedding:
            in_dim = H
        else:  # one-hot input: the first layer's input projection is a row lookup
            self.Wx0 = _param(self, "Wx0", _official_init(3), (I, 3 * first), ("items", "gates"))
            in_dim = None
        Wx, Wh, b = [], [], []
        for layer, h in enumerate(self.layers):
            if layer > 0 or in_dim is not None:
                d = in_dim if layer == 0 else self.layers[layer - 1]
                Wx.append(
                    _param(self, f"Wx{layer}", _official_init(3), (d, 3 * h), ("embed", "gates"))
                )
            else:
                Wx.append(None)
            Wh.append(
                _param(self, f"Wh{layer}", _official_init(3), (h, 3 * h), ("hidden", "gates"))
            )
            b.append(_param(self, f"b{layer}", nn.initializers.zeros, (3 * h,), ("gates",)))
        self.Wx, self.Wh, self.b = Wx, Wh, b
        self.drop_embed = nn.Dropout(self.dropout_embed)
        self.drop_hidden = nn.Dropout(self.dropout_hidden)

    def init_hidden(self, batch_size: int) -> tuple[jax.Array, ...]:
        """Zero states, one [B, H_l] per layer."""
        return tuple(jnp.zeros((batch_size, h), jnp.float32) for h in self.layers)

    def _input_gates(self, items: jax.Array) -> tuple[jax.Array | None, jax.Array | None]:
        if self.embedding > 0:
            return gather_rows(self.E, items), None
        if self.constrained_embedding:
            return gather_rows(self.Wy, items), None
        return None, gather_rows(self.Wx0, items)

    def _cell(self, layer: int, x, gates_x, h):
        dt = self.dtype
        if gates_x is None:
            gates_x = jnp.dot(x.astype(dt), self.Wx[layer].astype(dt))
        gates_x = gates_x.astype(jnp.float32) + self.b[layer]
        H = h.shape[-1]
        Wh = self.Wh[layer].astype(dt)
        rz = jnp.dot(h.astype(dt), Wh[:, H:]).astype(jnp.float32)
        gx_h, gx_r, gx_z = jnp.split(gates_x, 3, axis=-1)
        r = jax.nn.sigmoid(gx_r + rz[:, :H])
        z = jax.nn.sigmoid(gx_z + rz[:, H:])
        cand = jnp.tanh(gx_h + jnp.dot((r * h).astype(dt), Wh[:, :H]).astype(jnp.float32))
        return (1.0 - z) * h + z * cand

    def __call__(self, items: jax.Array, hidden: tuple[jax.Array, ...], train: bool = False):
        """One step. items int32 [B]; hidden: per layer [B, H_l] → (hidden', out [B, H])."""
        x, gates_x = self._input_gates(items)
        if x is not None and self.dropout_embed > 0:
            x = self.drop_embed(x, deterministic=not train)
        new = []
        for layer, h in enumerate(hidden):
            h = self._cell(layer, x, gates_x if layer == 0 else None, h)
            if self.dropout_hidden > 0:
                # The official code carries the dropped-out state to the next step, too.
                h = self.drop_hidden(h, deterministic=not train)
            new.append(h)
            x = h
        return tuple(new), x

    def encode(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        """Final-state read of left-padded histories (eval, no dropout).

        ids int32 [B, L], mask bool [B, L] → out [B, H]. Padded steps keep the state, so a
        left-padded history equals running from the zero state on the items alone.
        """
        hidden = self.init_hidden(ids.shape[0])

        def step(hidden, xs):
            items, m = xs
            x, gates_x = self._input_gates(items)
            new = []
            for layer, h in enumerate(hidden):
                h = jnp.where(
                    m[:, None], self._cell(layer, x, gates_x if layer == 0 else None, h), h
                )
                new.append(h)
                x = h
            return tuple(new), None

        hidden, _ = jax.lax.scan(step, hidden, (ids.T, mask.T))
        return hidden[-1]

    def score(self, out: jax.Array, cols: jax.Array | None = None) -> jax.Array:
        """out [B, H] → float32 scores [B, C] against item ids `cols` [C] (None: all I items)."""
        Wy, By = (
            (self.Wy, self.By)
            if cols is None
            else (gather_rows(self.Wy, cols), gather_rows(self.By, cols))
        )
        return dot_rows(out, Wy) + By
