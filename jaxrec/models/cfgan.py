"""CFGAN: Chae, Kang, Kim & Lee, "CFGAN: A Generic Collaborative Filtering Framework based on
Generative Adversarial Networks", CIKM 2018 (reference code: Bigdasgit/CFGAN).

Vector-wise GAN: the generator reads a purchase vector c [B, N] and outputs a real-valued
vector of the same width; the discriminator reads the pair (c, x) and returns one logit per
row. N is the catalogue (I) when rows are users (the paper) and the user count (U) when rows
are items (the authors' code default, `itemBased`). There is no noise input z, as in the
official code. Layers follow the official code: hidden layers use a sigmoid, the generator's
output layer is linear, weights are uniform(±sqrt(6 / (fan_in + fan_out))) and biases
uniform(±0.01).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


def _bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -0.01, 0.01)


class _Dense(nn.Module):
    """x [B, n_in] → [B, n_out]; `axes` are the logical axes of the kernel (rows, cols)."""

    features: int
    axes: tuple[str | None, str | None]
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.glorot_uniform(), self.axes),
            (x.shape[-1], self.features),
        )
        bias = self.param(
            "bias", nn.with_logical_partitioning(_bias_init, (self.axes[1],)), (self.features,)
        )
        y = jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))
        return y.astype(jnp.float32) + bias


class CFGANGenerator(nn.Module):
    """G(c): c float [B, N] → float32 [B, N] (linear output, as the official code).

    width: N; hidden: sizes of the sigmoid hidden layers; axis: logical axis of the N side
    ('items' for user rows, 'users' for item rows).
    """

    width: int
    hidden: tuple[int, ...] = (400,)
    axis: str = "items"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, condition):
        h, rows = condition, self.axis
        for n in self.hidden:
            h = jax.nn.sigmoid(_Dense(n, (rows, "hidden"), self.dtype)(h))
            rows = "hidden"
        return _Dense(self.width, ("hidden", self.axis), self.dtype)(h)


class CFGANDiscriminator(nn.Module):
    """D(c, x): condition, vector float [B, N] → logits float32 [B] (of "x is real")."""

    hidden: tuple[int, ...] = (125,)
    axis: str = "items"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, condition, vector):
        h, rows = jnp.concatenate([condition, vector], axis=-1), self.axis
        for n in self.hidden:
            h = jax.nn.sigmoid(_Dense(n, (rows, "hidden"), self.dtype)(h))
            rows = "hidden"
        return _Dense(1, ("hidden", None), self.dtype)(h)[:, 0]
