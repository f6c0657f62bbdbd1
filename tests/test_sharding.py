"""Sharded lookup and two-stage top-K against their single-device forms (8 fake CPU devices)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec
from tiny import FAMILIES, overrides, task_setup

from jaxrec import sharding
from jaxrec.step import compile_train_step


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


@pytest.mark.parametrize("model", [f[0] for f in FAMILIES])
def test_every_family_on_a_1x8_mesh_matches_one_device(model, tmp_path, ratings_file):
    """Tables split 8 ways over `model` (8×1 and 2×4 are in each family's tests, GRU4Rec end to
    end on all three shapes in test_cli): two steps give one device's parameters."""
    sets = [*overrides(model, tmp_path, ratings_file), "data.synthetic.num_items=64"]
    if model == "autorec":  # explicit ratings: 64 users, 32 items, so its tables split 8 ways
        sets.append(f"data.source={ratings_file(tmp_path / 'r.data', users=64, items=32)}")
    _, _, task, state0, batches = task_setup(sets)
    abstract = jax.eval_shape(task.init_state, jax.random.key(0))
    results = []
    for shape, devices in (((1, 1), jax.devices()[:1]), ((1, 8), jax.devices()[:8])):
        mesh = sharding.make_mesh(*shape, devices=devices)
        shardings = sharding.logical_shardings(mesh, abstract)
        state = jax.device_put(jax.tree.map(jnp.copy, state0), shardings)  # donated below
        step = compile_train_step(task.train_step, mesh, shardings)
        for b in batches[:2]:
            b = sharding.shard_batch(b, mesh, task.batch_axis)
            state, m = step(state, b, jax.random.key(3))
        specs = [x.sharding.spec for x in jax.tree.leaves(state.params)]
        results.append((jax.device_get(state.params), float(m["loss"]), specs))
    assert any(s and s[0] == "model" for s in results[1][2]), "no table was split"
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=2e-4)
    for x, y in zip(jax.tree.leaves(results[1][0]), jax.tree.leaves(results[0][0]), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)
