"""NextItNet: Yuan et al., "A Simple Convolutional Generative Network for Next Item
Recommendation", WSDM 2019 (fajieyuan/nextitnet; RecBole's NextItNet).

Item embeddings [L, C] go through residual blocks of dilated causal 1-D convolutions, block
type (b) of the paper and the official `nextitnet_residual_block`:

    out = x + ReLU(LN(conv_{2r}(ReLU(LN(conv_r(x))))))

with dilation r in the first convolution and 2r in the second, kernel k, left (causal) zero
padding so position t reads only positions ≤ t. Every position's output predicts the next
item through ReLU then a dense layer to the catalogue (the official full-softmax head
`conv1d(relu(dilate_input), item_size)`), here an item table `W` [I, C] plus bias `b` [I];
`tied=True` scores against the input table `E` instead (RecBole's NextItNet), with no `W`.
`head="linear"` replaces that ReLU by RecBole's `final_layer`, a C→C dense layer: with a
tied table a ReLU'd hidden state can only match the positive half of the item vectors.

Padding: sequences are left-padded; padded positions are held at zero after the embedding
and after every convolution, so they equal the causal zero padding and a history's output
does not depend on how much padding sits on its left (the official code instead reads a
learned padding item there). Init as the official code: truncated normal, std 0.02, for the
embedding and every convolution and output weight; zero biases; LN scale 1, offset 0, eps
1e-8. Shapes: B batch, L length, C channels (= embedding), I items, k kernel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.embedding import dot_rows
from jaxrec.models.dropout import dropout_scales

_INIT = nn.initializers.truncated_normal(stddev=0.02)
HEADS = ("relu", "linear")


def causal_conv(x: jax.Array, w: jax.Array, b: jax.Array, dilation: int, dtype=jnp.float32):
    """Dilated causal 1-D convolution. x [B, L, C_in], w [k, C_in, C_out], b [C_out].

    out[t] = b + Σ_j x[t - (k-1-j)·dilation] @ w[j], with x = 0 before the sequence start.
    One XLA convolution (left padding, kernel dilation): its gradient is about twice as fast
    on CPU as the same sum written as k shifted slices concatenated into one matmul.
    """
    k = w.shape[0]
    out = jax.lax.conv_general_dilated(
        x.astype(dtype),
        w.astype(dtype),
        window_strides=(1,),
        padding=[((k - 1) * dilation, 0)],
        rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
        preferred_element_type=jnp.float32,
    )
    return out + b


class ResidualBlock(nn.Module):
    """Block (b): conv(r) → LN → ReLU → conv(2r) → LN → ReLU, plus the input. [B, L, C]."""

    channels: int
    dilation: int
    kernel_size: int = 3
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, scales=None):
        """x [B, L, C], mask bool [B, L]; scales float [B, L, C]: dropout multipliers on the
        residual branch (None: no dropout)."""
        C, k = self.channels, self.kernel_size
        m = mask[..., None]
        h = x
        for i, rate in enumerate((self.dilation, 2 * self.dilation), start=1):
            w = self.param(f"conv{i}", _INIT, (k, h.shape[-1], C))
            b = self.param(f"conv{i}_bias", nn.initializers.zeros, (C,))
            h = causal_conv(h, w, b, rate, self.dtype)
            h = nn.LayerNorm(epsilon=1e-8, name=f"ln{i}")(h)
            h = jnp.where(m, jax.nn.relu(h), 0.0)  # padded positions stay causal zeros
        if scales is not None:  # dropout on the residual branch (the papers use none)
            h = h * scales
        return x + h


class NextItNet(nn.Module):
    """Stack of residual blocks, one per dilation, over left-padded item sequences."""

    num_items: int
    embedding: int = 64  # C
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    kernel_size: int = 3
    dropout: float = 0.0  # on every residual branch
    dropout_embed: float = 0.0  # on the input embeddings
    tied: bool = False  # score against E (RecBole) instead of a separate output table W
    head: str = "relu"  # relu (official) | linear (RecBole's final C→C layer)
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        I, C = self.num_items, self.embedding
        table = nn.with_logical_partitioning
        self.E = self.param("E", table(_INIT, ("items", "embed")), (I, C))
        if not self.tied:
            self.W = self.param("W", table(_INIT, ("items", "embed")), (I, C))
        self.b = self.param("b", table(nn.initializers.zeros, ("items",)), (I,))
        self.blocks = [
            ResidualBlock(C, r, self.kernel_size, self.dtype, name=f"block{i}")
            for i, r in enumerate(self.dilations)
        ]
        if self.head not in HEADS:
            raise ValueError(f"NextItNet head={self.head!r}: use one of {', '.join(HEADS)}")
        if self.head == "linear":
            self.final = nn.Dense(C, kernel_init=_INIT, name="final")

    def __call__(self, ids, mask, train: bool = False) -> jax.Array:
        """ids int32 [B, L], mask bool [B, L] → hidden [B, L, C] (the output layer's input:
        ReLU'd, or through the final dense layer), position t summarising items ≤ t."""
        x = jnp.where(mask[..., None], jnp.take(self.E, ids, axis=0), 0.0)
        scales = [None] * len(self.blocks)
        if train and (self.dropout > 0 or self.dropout_embed > 0):
            key = self.make_rng("dropout")
            if self.dropout > 0:
                scales = dropout_scales(key, (len(self.blocks), *x.shape), self.dropout)
            if self.dropout_embed > 0:
                x = x * dropout_scales(jax.random.fold_in(key, 1), x.shape, self.dropout_embed)
        for block, s in zip(self.blocks, scales, strict=True):
            x = block(x, mask, s)
        h = self.final(x) if self.head == "linear" else jax.nn.relu(x)
        return jnp.where(mask[..., None], h, 0.0)

    def score(self, h: jax.Array, cols: jax.Array | None = None) -> jax.Array:
        """h [..., C] → float32 scores [..., I] (cols None) or [..., S] for item ids cols [S]."""
        W = self.item_vectors()
        W, b = (W, self.b) if cols is None else (W[cols], self.b[cols])
        return dot_rows(h, W) + b

    def score_targets(self, h: jax.Array, targets: jax.Array) -> jax.Array:
        """h [..., C], targets int [...] → float32 [...]: each position's own target score."""
        w, b = jnp.take(self.item_vectors(), targets, axis=0), jnp.take(self.b, targets, axis=0)
        return jnp.einsum("...c,...c->...", h, w, preferred_element_type=jnp.float32) + b

    def item_vectors(self) -> jax.Array:
        """The output item table: W [I, C], or E when tied (b a per-item bias beside it)."""
        return self.E if self.tied else self.W
