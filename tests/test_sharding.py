"""Sharded lookup and two-stage top-K against their single-device forms (8 fake CPU devices)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxrec import sharding


@pytest.mark.parametrize("shape", [(2, 4), (1, 8), (8, 1)])
def test_lookup_on_row_sharded_table_equals_take_with_gradients(shape):
    mesh = sharding.make_mesh(*shape)
    rng = np.random.default_rng(0)
    table = rng.normal(size=(64, 5)).astype(np.float32)
    ids = np.array([[3, 63, 0, 17], [17, 64, 40, 8]], np.int32)  # 64: out of range → zeros
    weights = rng.normal(size=(2, 4, 5)).astype(np.float32)

    def loss(t, lookup):
        return jnp.sum(lookup(t, jnp.asarray(ids)) * weights)

    plain = jax.value_and_grad(lambda t: loss(t, sharding.lookup))(table)  # no mesh: take
    sharded_table = jax.device_put(table, NamedSharding(mesh, PartitionSpec("model", None)))
    with jax.set_mesh(mesh):
        got = jax.jit(jax.value_and_grad(lambda t: loss(t, sharding.lookup)))(sharded_table)
        rows = jax.jit(sharding.lookup)(sharded_table, jnp.asarray(ids))
    want_rows = np.where((ids < 64)[..., None], table[np.minimum(ids, 63)], 0)
    np.testing.assert_array_equal(np.asarray(rows), want_rows)
    np.testing.assert_allclose(got[0], plain[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], plain[1], rtol=1e-6)


def test_lookup_falls_back_when_rows_do_not_split_evenly():
    mesh = sharding.make_mesh(2, 4)
    table = jnp.arange(30.0).reshape(10, 3)  # 10 rows over 4 shards
    with jax.set_mesh(mesh):
        got = jax.jit(sharding.lookup)(table, jnp.array([9, 0, 10]))
    np.testing.assert_array_equal(got, [[27, 28, 29], [0, 1, 2], [0, 0, 0]])


@pytest.mark.parametrize("num_items", [1003, 1024, 12])
def test_two_stage_top_k_equals_lax_top_k_with_ties(num_items):
    mesh = sharding.make_mesh(2, 4)
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(16, num_items)).astype(np.float32)
    scores[:, num_items // 2] = scores[:, 1]  # ties across shards go to the lower id
    scores[:, num_items - 1] = -np.inf
    k = min(10, num_items)
    want_v, want_i = jax.lax.top_k(scores, k)
    items_axis = "model" if num_items % 4 == 0 else None  # uneven: padded inside top_k
    sharded = jax.device_put(scores, NamedSharding(mesh, PartitionSpec("data", items_axis)))
    with jax.set_mesh(mesh):
        v, i = jax.jit(lambda s: sharding.top_k(s, k))(sharded)
    np.testing.assert_array_equal(np.asarray(i), np.asarray(want_i))
    np.testing.assert_array_equal(np.asarray(v), np.asarray(want_v))


def test_logical_shardings_replicate_rows_the_mesh_does_not_divide():
    from flax import linen as nn

    mesh = sharding.make_mesh(1, 8)
    tree = {
        n: nn.LogicallyPartitioned(jax.ShapeDtypeStruct((n, 4), jnp.float32), ("items", "embed"))
        for n in (60, 64)
    }
    with pytest.warns(UserWarning, match="cannot split 60 rows"):
        got = sharding.logical_shardings(mesh, tree)
    assert got[64].spec == jax.sharding.PartitionSpec("model", None)
    assert got[60].spec == jax.sharding.PartitionSpec(None, None)
