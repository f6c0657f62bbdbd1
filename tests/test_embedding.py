import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.embedding import adagrad_rows, gather_rows, touched_rows
from jaxrec.optim import scale_by_adagrad


def test_touched_rows_unique_and_inverse():
    ids = jnp.array([5, 2, 5, 7, 2, 2], jnp.int32)
    rows, inv = touched_rows(ids, num_rows=10)
    assert rows.tolist() == [2, 5, 7, 10, 10, 10]  # padded with the out-of-range id
    np.testing.assert_array_equal(rows[inv], ids)
    g = gather_rows(jnp.arange(10.0)[:, None] * jnp.ones((1, 3)), rows)
    assert g[:3, 0].tolist() == [2.0, 5.0, 7.0] and g[3:].sum() == 0


def test_touched_rows_never_more_than_the_table_plus_padding():
    # 9 ids over a 3-row table, padding (= 3) among them: 4 distinct values at most.
    ids = jnp.array([2, 0, 3, 2, 1, 3, 0, 0, 2], jnp.int32)
    rows, inv = touched_rows(ids, num_rows=3)
    assert rows.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(rows[inv], ids)
    rows, inv = touched_rows(jnp.array([1, 1, 1, 1], jnp.int32), num_rows=3)
    assert rows.tolist() == [1, 3, 3, 3]
    np.testing.assert_array_equal(rows[inv], [1, 1, 1, 1])


def test_adagrad_rows_equals_dense_adagrad_and_leaves_other_rows():
    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.normal(size=(12, 4)), jnp.float32)
    acc0 = jnp.asarray(rng.uniform(0, 1, size=(12, 4)), jnp.float32)
    ids = jnp.array([3, 1, 3, 9], jnp.int32)
    grad_per_id = jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)
    rows, inv = touched_rows(ids, 12)
    # duplicates are summed, as the gradient of a gather sums them
    grad_rows = jnp.zeros((rows.shape[0], 4)).at[inv].add(grad_per_id)
    new_table, new_acc, _ = jax.jit(adagrad_rows)(table, acc0, rows, grad_rows, 0.1)

    dense_grad = jnp.zeros((12, 4)).at[ids].add(grad_per_id)
    tx = scale_by_adagrad()
    updates, acc = tx.update(dense_grad, acc0)
    ref = table - 0.1 * updates
    touched = np.array([1, 3, 9])
    np.testing.assert_allclose(new_table[touched], ref[touched], rtol=1e-6)
    np.testing.assert_allclose(new_acc[touched], acc[touched], rtol=1e-6)
    untouched = np.setdiff1d(np.arange(12), touched)
    # bit-identical: untouched rows and their optimizer slots are neither read nor written
    assert np.array_equal(np.asarray(new_table)[untouched], np.asarray(table)[untouched])
    assert np.array_equal(np.asarray(new_acc)[untouched], np.asarray(acc0)[untouched])


def test_scale_by_adagrad_formula():
    tx = scale_by_adagrad(eps=1e-6)
    g = {"w": jnp.array([3.0, -4.0, 0.0])}
    state = tx.init(g)
    u, state = tx.update(g, state)
    np.testing.assert_allclose(
        u["w"], [3 / np.sqrt(9 + 1e-6), -4 / np.sqrt(16 + 1e-6), 0.0], rtol=1e-6
    )
    u, state = tx.update(g, state)
    np.testing.assert_allclose(state["w"], [18.0, 32.0, 0.0])


def test_adagrad_rows_momentum_is_lazy_heavy_ball():
    table = jnp.ones((5, 2))
    acc = jnp.zeros((5, 2))
    vel = jnp.full((5, 2), 0.5)
    rows = jnp.array([1, 3, 5], jnp.int32)  # 5 = padding
    g = jnp.array([[1.0, 2.0], [0.5, -1.0], [9.0, 9.0]])
    t, a, v = adagrad_rows(table, acc, rows, g, 0.1, momentum=0.9, velocity=vel)
    u = np.asarray(g[:2]) / np.sqrt(np.asarray(g[:2]) ** 2 + 1e-6)
    want_v = 0.9 * 0.5 - 0.1 * u
    np.testing.assert_allclose(v[np.array([1, 3])], want_v, rtol=1e-6)
    np.testing.assert_allclose(t[np.array([1, 3])], 1 + want_v, rtol=1e-6)
    for r in (0, 2, 4):  # untouched rows: weights and velocity unchanged (lazy)
        assert np.array_equal(t[r], table[r]) and np.array_equal(v[r], vel[r])


def test_lazy_adam_rows_equals_optax_adam_on_touched_rows_and_is_lazy():
    import optax

    from jaxrec.embedding import lazy_adam_rows

    rng = np.random.default_rng(1)
    table = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)
    m, v = jnp.zeros_like(table), jnp.zeros_like(table)
    tx = optax.adam(0.05)
    dense, opt = table, tx.init(table)
    rows = jnp.array([2, 6, 10], jnp.int32)  # 10 = padding
    for count in (1, 2, 3):  # rows 2 and 6 are touched at every step
        g = jnp.asarray(rng.normal(size=(3, 3)), jnp.float32)
        table, m, v = jax.jit(lazy_adam_rows)(table, m, v, rows, g, 0.05, count)
        dense_g = jnp.zeros((10, 3)).at[rows].add(g, mode="drop")
        upd, opt = tx.update(dense_g, opt)
        dense = optax.apply_updates(dense, upd)
    np.testing.assert_allclose(table[np.array([2, 6])], dense[np.array([2, 6])], rtol=1e-5)
    before = np.asarray(table)
    # step 4 touches only row 2: row 6 stays put (dense Adam would move it by momentum)
    g = jnp.ones((3, 3))
    table, m2, v2 = lazy_adam_rows(table, m, v, jnp.array([2, 10, 10], jnp.int32), g, 0.05, 4)
    untouched = np.setdiff1d(np.arange(10), [2])
    assert np.array_equal(np.asarray(table)[untouched], before[untouched])
    assert np.array_equal(np.asarray(m2)[untouched], np.asarray(m)[untouched])
    assert np.array_equal(np.asarray(v2)[untouched], np.asarray(v)[untouched])
    assert not np.array_equal(np.asarray(table)[2], before[2])
