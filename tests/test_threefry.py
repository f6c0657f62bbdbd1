"""jaxrec.threefry draws exactly what jax.random draws, and Dropout is nn.Dropout to the bit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxrec import threefry
from jaxrec.models.dropout import Dropout

SHAPES = [(), (1,), (7,), (3, 5), (256, 281), (2, 3, 5, 7)]
KEYS = [jax.random.key(0), jax.random.key(12345), jax.random.fold_in(jax.random.key(3), 99)]


@pytest.mark.parametrize("shape", SHAPES)
def test_bits_and_uniform_equal_jax_random(shape):
    for key in KEYS:
        np.testing.assert_array_equal(threefry.bits(key, shape),
                                      jax.random.bits(key, shape, jnp.uint32))  # fmt: skip
        np.testing.assert_array_equal(threefry.uniform(key, shape), jax.random.uniform(key, shape))
        np.testing.assert_array_equal(
            threefry.uniform(key, shape, -0.5, 2.0),
            jax.random.uniform(key, shape, minval=-0.5, maxval=2.0),
        )
        for p in (0.0, 0.2, 0.5, 1.0):
            np.testing.assert_array_equal(threefry.bernoulli(key, p, shape),
                                          jax.random.bernoulli(key, p, shape))  # fmt: skip


def test_equal_under_jit_with_a_traced_key_and_probability():
    key = jax.random.key(7)
    f = jax.jit(lambda k, i, p: threefry.bernoulli(jax.random.fold_in(k, i), p, (64, 33)))
    g = jax.jit(lambda k, i, p: jax.random.bernoulli(jax.random.fold_in(k, i), p, (64, 33)))
    for i in range(3):
        p = jnp.linspace(0.0, 1.0, 33)  # one probability per column, broadcast
        np.testing.assert_array_equal(f(key, i, p), g(key, i, p))
    # Uniform enough: a plain sanity check of the hash written out (mean 0.5, sd 1/sqrt(12)).
    u = np.asarray(threefry.uniform(key, (100_000,)))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.std() - 12**-0.5) < 0.005
    assert 0.0 <= u.min() and u.max() < 1.0


def test_other_generators_fall_back_to_jax_random():
    key = jax.random.key(5, impl="rbg")
    np.testing.assert_array_equal(threefry.bits(key, (9, 4)), jax.random.bits(key, (9, 4)))
    np.testing.assert_array_equal(threefry.uniform(key, (9, 4)), jax.random.uniform(key, (9, 4)))
    assert not threefry._fast(jax.random.key(0), (2**16, 2**16))  # 2^32 elements: JAX's
    # ... but a default key takes the written-out path: the equality tests above compare it,
    # not JAX against itself.
    assert all(threefry._fast(k, s) for k in KEYS for s in SHAPES)


class _Net(nn.Module):
    """A model with a dropout layer named `drop`, Flax's or ours."""

    layer: type
    rate: float

    def setup(self):
        self.drop = self.layer(self.rate)

    def __call__(self, x, train: bool):
        return self.drop(x * 2.0, deterministic=not train) + 1.0


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_dropout_equals_flax_dropout_with_the_same_rng(rate):
    x = jax.random.normal(jax.random.key(1), (32, 50))
    ours, flax_ = _Net(Dropout, rate), _Net(nn.Dropout, rate)
    for seed in range(3):
        rngs = {"dropout": jax.random.key(seed)}
        a = ours.apply({}, x, train=True, rngs=rngs)
        np.testing.assert_array_equal(a, flax_.apply({}, x, train=True, rngs=rngs))
    np.testing.assert_array_equal(ours.apply({}, x, train=False), 2.0 * x + 1.0)

    # The gradient through the mask, too (what a train step sees).
    def loss(net, x):
        return net.apply({}, x, train=True, rngs=rngs).sum()

    np.testing.assert_array_equal(jax.grad(functools.partial(loss, ours))(x),
                                  jax.grad(functools.partial(loss, flax_))(x))  # fmt: skip
