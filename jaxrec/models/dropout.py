"""Inverted dropout from 16 random bits per element (Caser, NextItNet).

`dropout_scales` draws half the random bits `nn.Dropout` draws (a float32 uniform per
element): random-bit generation was a large share of these models' CPU steps, and one call
serves every block's mask.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def dropout_scales(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """Inverted-dropout multipliers float32 `shape`: 0 with probability `rate`, else 1/(1-rate).

    16 random bits per element (two per threefry word) where `nn.Dropout` draws a float32
    uniform (32); NextItNet draws every block's mask in one call. The rate is rounded
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
