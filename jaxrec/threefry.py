"""`jax.random`'s bits, uniforms and Bernoulli draws, bit for bit, written out for XLA's CPU.

JAX lowers its Threefry-2x32 hash (Salmon et al., "Parallel random numbers: as easy as 1, 2,
3", SC 2011; 20 rounds) as a 5-iteration loop on CPU, to keep compile times short; each
iteration copies the loop's [n] state, so the bits cost 2.7x what the same hash costs
written out (360K words alone: 1.64 ms against 0.61 ms; 2-core CPU, 2026-12-02). Here the
20 rounds are written out, so XLA fuses the hash into the pass that reads the bits. The
counters are JAX's for `jax_threefry_partitionable` (the default): the flat index as a
(hi, lo) word pair, the two output words XORed. The results equal `jax.random.bits /
uniform / bernoulli` exactly (tests/test_threefry.py): switching a draw changes no number
a model trains to. A key of another PRNG implementation, the legacy non-partitionable
mode, or 2^32 elements or more fall back to `jax.random`.

Use it where one or two fusions read the draw, and measure: XLA duplicates a cheap
elementwise producer into every consumer fusion, and an optimization barrier does not
stop it on CPU. CDAE's corruption and negatives (one reader each, [256, 2,810]) gained;
Caser's dropout masks, read by 27 fusions of its step, made the step 14.5 → 17.2 ms; CFGAN
and GRU4Rec were slower or level, Mult-VAE level (train-step medians, two alternating
runs each, 2026-12-02). So only CDAE uses it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _hash(k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array):
    """Threefry-2x32 of counter words (x0, x1) under key (k0, k1): five groups of four
    rounds, a key injection after each."""
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(1, 6):
        for r in _ROTATIONS[(group - 1) % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[group % 3]
        x1 = x1 + ks[(group + 1) % 3] + np.uint32(group)
    return x0, x1


def _fast(key: jax.Array, shape: tuple[int, ...]) -> bool:
    """Whether this module reproduces `jax.random` for `key` and `shape`."""
    return (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        and key.shape == ()
        and str(jax.random.key_impl(key)) == "threefry2x32"
        and getattr(jax.config, "jax_threefry_partitionable", True)
        and math.prod(shape) < 2**32
    )


def _flat_index(shape: tuple[int, ...]) -> jax.Array:
    """uint32 `shape`: each element's row-major index, built per axis from broadcasted iotas
    as JAX builds its partitionable counters (elementwise, so a sharded draw can be split
    with the array; not measured sharded here)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride)
        stride *= shape[axis]
    return index


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 `shape` of random bits: `jax.random.bits(key, shape, jnp.uint32)`."""
    shape = tuple(int(d) for d in shape)
    if not _fast(key, shape):
        return jax.random.bits(key, shape, jnp.uint32)
    k = jax.random.key_data(key)
    lo = _flat_index(shape)
    x0, x1 = _hash(k[0], k[1], jnp.zeros_like(lo), lo)
    return x0 ^ x1


def uniform(
    key: jax.Array, shape: tuple[int, ...], minval: float = 0.0, maxval: float = 1.0
) -> jax.Array:
    """float32 `shape` in [minval, maxval): `jax.random.uniform(key, shape, minval=...,
    maxval=...)` (23 random mantissa bits under a fixed exponent, as JAX builds it)."""
    b = bits(key, shape)
    one = np.array(1.0, np.float32).view(np.uint32)
    floats = jax.lax.bitcast_convert_type((b >> np.uint32(9)) | one, jnp.float32) - 1.0
    lo, hi = jnp.float32(minval), jnp.float32(maxval)
    return jnp.maximum(lo, floats * (hi - lo) + lo)


def bernoulli(key: jax.Array, p, shape: tuple[int, ...]) -> jax.Array:
    """bool `shape`, True with probability p: `jax.random.bernoulli(key, p, shape)`."""
    return uniform(key, shape) < p
