"""Dropout with cheaper random bits on the 2-core CPU, where they were a large share of steps.

`Dropout` is Flax's `nn.Dropout` to the bit (same rng stream, same mask), its bits drawn
through `jaxrec.threefry` (CDAE; see there where that helps and where it does not);
`dropout_scales` draws 16 random bits per element instead of a float32 uniform (NextItNet,
Caser; figures below and in the README).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec import threefry


class Dropout(nn.Module):
    """`nn.Dropout(rate)` without `broadcast_dims`: the same mask for the same rng (its
    `make_rng('dropout')` folds in this module's path, so keep the attribute name of the
    `nn.Dropout` it replaces), drawn through `threefry.bernoulli`."""

    rate: float
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, inputs: jax.Array, deterministic: bool | None = None) -> jax.Array:
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep = 1.0 - self.rate
        mask = threefry.bernoulli(self.make_rng("dropout"), keep, inputs.shape)
        return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))


def dropout_scales(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """Inverted-dropout multipliers float32 `shape`: 0 with probability `rate`, else 1/(1-rate).

    16 random bits per element (two per threefry word) where `nn.Dropout` draws a float32
    uniform (32): in NextItNet's Games step (8 blocks of [128, 20, 64]) one `nn.Dropout`
    per block spent about 12 ms of a 65 ms step generating random bits (XLA profile, 2-core
    CPU, 2026-11-29); NextItNet draws every block's mask in one call. The rate is rounded
    to a multiple of 2^-16 (0.3 → 0.299998…) and the scale uses the rounded rate, so
    E[multiplier] = 1 exactly.
    """
    size = math.prod(shape)
    words = jax.random.bits(key, ((size + 1) // 2,), jnp.uint32)
    u16 = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:size].reshape(shape)
    drop = int(round(rate * 65536))
    if drop >= 65536:
        return jnp.zeros(shape, jnp.float32)
    return jnp.where(u16 >= drop, jnp.float32(65536 / (65536 - drop)), 0.0)
