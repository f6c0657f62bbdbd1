import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxrec.models.gru4rec import GRU4Rec


def _init(model, B=3):
    hidden = model.init_hidden(B)
    params = model.init(jax.random.key(0), jnp.zeros((B,), jnp.int32), hidden)["params"]
    return nn.meta.unbox(params)


def _np_cell(x_gates, h, Wh, b):
    H = h.shape[1]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    g = x_gates + b
    r = sig(g[:, H : 2 * H] + h @ Wh[:, H : 2 * H])
    z = sig(g[:, 2 * H :] + h @ Wh[:, 2 * H :])
    cand = np.tanh(g[:, :H] + (r * h) @ Wh[:, :H])
    return (1 - z) * h + z * cand


@pytest.mark.parametrize("style", ["constrained", "embedding", "onehot"])
def test_step_matches_numpy_gru(style):
    kw = {
        "constrained": dict(),
        "embedding": dict(embedding=5, constrained_embedding=False),
        "onehot": dict(constrained_embedding=False),
    }[style]
    model = GRU4Rec(num_items=11, layers=(4,), **kw)
    p = jax.tree.map(np.asarray, _init(model))
    items = jnp.array([1, 4, 10])
    h0 = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    (h1,), out = model.apply({"params": p}, items, (jnp.asarray(h0),))
    if style == "constrained":
        gates = p["Wy"][np.asarray(items)] @ p["Wx0"]
    elif style == "embedding":
        gates = p["E"][np.asarray(items)] @ p["Wx0"]
    else:
        gates = p["Wx0"][np.asarray(items)]
    want = _np_cell(gates, h0, p["Wh0"], p["b0"])
    np.testing.assert_allclose(h1, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, h1)
    scores = model.apply({"params": p}, out, method="score")
    np.testing.assert_allclose(scores, want @ p["Wy"].T + p["By"], rtol=1e-5, atol=1e-5)


def test_encode_equals_stepping_and_ignores_left_padding():
    model = GRU4Rec(num_items=20, layers=(6, 5))
    p = _init(model)
    seq = jnp.array([[3, 7, 1, 9]])
    hidden = model.init_hidden(1)
    for t in range(4):
        hidden, out = model.apply({"params": p}, seq[:, t], hidden)
    ids = jnp.array([[0, 0, 3, 7, 1, 9]])
    mask = jnp.array([[False, False, True, True, True, True]])
    enc = model.apply({"params": p}, ids, mask, method="encode")
    np.testing.assert_allclose(enc, out, rtol=1e-5, atol=1e-6)


def test_official_init_range_and_logical_axes():
    model = GRU4Rec(num_items=1000, layers=(100,))
    boxed = model.init(jax.random.key(0), jnp.zeros((2,), jnp.int32), model.init_hidden(2))
    specs = nn.get_partition_spec(boxed)["params"]
    assert tuple(specs["Wy"]) == ("items", "embed")
    p = nn.meta.unbox(boxed)["params"]
    s = np.sqrt(6 / (1000 + 100))
    assert np.abs(p["Wy"]).max() <= s and np.abs(p["Wy"]).max() > 0.9 * s
    assert p["Wh0"].shape == (100, 300)


def test_dropout_only_in_training():
    model = GRU4Rec(num_items=10, layers=(8,), dropout_hidden=0.5)
    p = _init(model, B=2)
    h = model.init_hidden(2)
    _, a = model.apply({"params": p}, jnp.array([1, 2]), h)
    _, b = model.apply({"params": p}, jnp.array([1, 2]), h)
    np.testing.assert_array_equal(a, b)
    _, c = model.apply(
        {"params": p}, jnp.array([1, 2]), h, train=True, rngs={"dropout": jax.random.key(1)}
    )
    assert (np.asarray(c) == 0).any()
