"""Metrics against hand-computed cases; negative sampling's exclusion and determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.data.interactions import Sequences
from jaxrec.errors import ConfigError
from jaxrec.metrics import (
    mask_items,
    ranking_metrics,
    sample_negatives,
    sampled_metrics,
    sampled_rank,
    top_k,
)

L2 = np.log2  # discounts below are written as 1 / log2(rank + 2), rank 0-based
# One compile per call shape instead of one per eager op: keeps the file fast.
_ranking_metrics = jax.jit(ranking_metrics, static_argnums=(3, 4))


def _metrics(top, targets, ks, denominator="min"):
    """ranking_metrics on python lists; targets padded with 0 + mask False."""
    width = max(len(t) for t in targets) or 1
    tgt = np.zeros((len(targets), width), np.int32)
    mask = np.zeros((len(targets), width), bool)
    for i, t in enumerate(targets):
        tgt[i, : len(t)], mask[i, : len(t)] = t, True
    out = _ranking_metrics(jnp.asarray(top, jnp.int32), tgt, mask, ks, denominator)
    return {k: np.asarray(v) for k, v in out.items()}


def test_mask_items_sets_seen_to_minus_inf_and_ignores_padding():
    scores = jnp.arange(12, dtype=jnp.float32).reshape(2, 6)
    ids = jnp.array([[0, 0, 3, 3], [5, 2, 0, 0]])  # row 0: pads then 3 twice; row 1: pads at end
    mask = jnp.array([[False, False, True, True], [True, True, False, False]])
    out = np.asarray(mask_items(scores, ids, mask))
    expected = np.arange(12, dtype=np.float32).reshape(2, 6)
    expected[0, 3] = expected[1, 5] = expected[1, 2] = -np.inf
    np.testing.assert_array_equal(out, expected)  # item 0 (the pad id) stays visible


def test_top_k_breaks_ties_toward_lower_item_id():
    values, ids = top_k(jnp.array([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0, 5.0]]), 3)
    np.testing.assert_array_equal(np.asarray(ids), [[1, 2, 4], [4, 0, 1]])
    np.testing.assert_array_equal(np.asarray(values), [[3, 3, 3], [5, 2, 2]])
    assert ids.dtype == jnp.int32


def test_single_target_hit_at_second_position():
    m = _metrics([[5, 3, 7, 1]], [[3]], ks=(1, 2, 4))
    assert m["hr@1"][0] == 0 and m["hr@2"][0] == 1 and m["hr@4"][0] == 1
    np.testing.assert_allclose(m["ndcg@2"], [1 / L2(3)], rtol=1e-6)
    np.testing.assert_allclose(m["ndcg@4"], [1 / L2(3)], rtol=1e-6)
    np.testing.assert_allclose(m["mrr@2"], [0.5])
    np.testing.assert_allclose(m["mrr@1"], [0.0])
    np.testing.assert_allclose(m["recall@2"], [1.0])  # 1 hit / min(2, 1)
    np.testing.assert_allclose(m["precision@2"], [0.5])
    np.testing.assert_allclose(m["precision@4"], [0.25])
    np.testing.assert_allclose(m["weight"], [1.0])


def test_multiple_targets_and_recall_denominators():
    top, targets = [[5, 3, 7, 1]], [[5, 1, 9]]  # hits at ranks 0 and 3; 9 never retrieved
    m_min = _metrics(top, targets, ks=(2, 4), denominator="min")
    m_all = _metrics(top, targets, ks=(2, 4), denominator="all")
    np.testing.assert_allclose(m_min["recall@2"], [1 / 2])  # 1 hit / min(2, 3)
    np.testing.assert_allclose(m_all["recall@2"], [1 / 3])  # 1 hit / 3
    np.testing.assert_allclose(m_min["recall@4"], [2 / 3])
    np.testing.assert_allclose(m_all["recall@4"], [2 / 3])
    np.testing.assert_allclose(m_min["ndcg@2"], [1 / (1 + 1 / L2(3))], rtol=1e-6)
    idcg4 = 1 + 1 / L2(3) + 1 / L2(4)  # ideal over min(4, 3) = 3 targets
    np.testing.assert_allclose(m_min["ndcg@4"], [(1 + 1 / L2(5)) / idcg4], rtol=1e-6)
    np.testing.assert_allclose(m_min["mrr@4"], [1.0])
    np.testing.assert_allclose(m_min["precision@4"], [0.5])
    np.testing.assert_allclose(m_min["hr@2"], [1.0])


def test_fewer_relevant_items_than_k_gives_perfect_scores_when_all_on_top():
    m = _metrics([[4, 2, 0, 1, 3]], [[2, 4]], ks=(5,))
    for name in ("hr@5", "recall@5", "ndcg@5", "mrr@5"):
        np.testing.assert_allclose(m[name], [1.0], rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(m["precision@5"], [0.4])
    # 'all' and 'min' agree when |T| <= k.
    np.testing.assert_allclose(_metrics([[4, 2, 0, 1, 3]], [[2, 4]], (5,), "all")["recall@5"], [1])


def test_no_hits_no_targets_and_padded_targets():
    # Row 0: no hit. Row 1: no targets at all (all padding). Row 2: one target, padded entries
    # (id 0, mask False) must not match the 0 in the top list.
    top = [[1, 2, 0], [1, 2, 0], [0, 5, 6]]
    m = _metrics(top, [[9], [], [6]], ks=(3,))
    for name, v in m.items():
        assert np.all(np.isfinite(v)), name
    np.testing.assert_allclose(m["weight"], [1, 0, 1])
    for name in ("hr@3", "recall@3", "ndcg@3", "mrr@3", "precision@3"):
        assert m[name][0] == 0 and m[name][1] == 0
    np.testing.assert_allclose(m["hr@3"][2], 1.0)
    np.testing.assert_allclose(m["mrr@3"][2], 1 / 3)
    np.testing.assert_allclose(m["ndcg@3"][2], 1 / L2(4), rtol=1e-6)
    np.testing.assert_allclose(m["precision@3"][2], 1 / 3)


def test_negative_top_ids_never_match():
    m = _metrics([[-1, -1, 3]], [[3]], ks=(3,))
    np.testing.assert_allclose(m["mrr@3"], [1 / 3])
    m = _metrics([[-1, 4]], [[3]], ks=(2,))
    assert m["hr@2"][0] == 0


def test_ranking_metrics_jits_and_checks_arguments():
    top = jnp.array([[2, 0, 1]])
    f = jax.jit(ranking_metrics, static_argnames=("ks", "recall_denominator"))
    out = f(top, jnp.array([[0]]), jnp.array([[True]]), ks=(2,), recall_denominator="all")
    np.testing.assert_allclose(out["ndcg@2"], [1 / L2(3)], rtol=1e-6)
    with pytest.raises(ConfigError, match="recall_denominator"):
        ranking_metrics(top, jnp.array([[0]]), jnp.array([[True]]), (2,), "max")
    with pytest.raises(ValueError, match="columns"):
        ranking_metrics(top, jnp.array([[0]]), jnp.array([[True]]), (5,))


def test_sampled_rank_ties_favour_the_target_by_default():
    target = jnp.array([1.0, 0.0, 3.0])
    negatives = jnp.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(sampled_rank(target, negatives)), [1, 0, 0])
    pessimistic = sampled_rank(target, negatives, ties="pessimistic")
    np.testing.assert_array_equal(np.asarray(pessimistic), [2, 3, 0])
    with pytest.raises(ConfigError):
        sampled_rank(target, negatives, ties="random")


def test_sampled_metrics_values():
    m = {k: np.asarray(v) for k, v in sampled_metrics(jnp.array([0, 3, 10, 50]), (10,)).items()}
    np.testing.assert_allclose(m["hr@10"], [1, 1, 0, 0])
    np.testing.assert_allclose(m["ndcg@10"], [1, 1 / L2(5), 0, 0], rtol=1e-6)
    np.testing.assert_allclose(m["mrr@10"], [1, 1 / 4, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(m["mrr"], [1, 1 / 4, 1 / 11, 1 / 51], rtol=1e-6)


def _history():
    rng = np.random.default_rng(0)
    rows = [rng.choice(50, size=rng.integers(0, 45), replace=False) for _ in range(30)]
    rows[4] = np.arange(49)  # only item 49 is left for user 4
    return rows, Sequences.from_rows(rows)


def test_sample_negatives_excludes_history():
    rows, hist = _history()
    users = np.arange(30)
    neg = sample_negatives(hist, users, 50, 40, seed=3)
    assert neg.shape == (30, 40) and neg.dtype == np.int32
    for u in users:
        assert not np.isin(neg[u], rows[u]).any(), u
    assert np.all(neg[4] == 49)
    assert neg.min() >= 0 and neg.max() < 50


def test_sample_negatives_is_deterministic_and_batch_independent():
    _, hist = _history()
    full = sample_negatives(hist, np.arange(30), 50, 20, seed=7)
    again = sample_negatives(hist, np.arange(30), 50, 20, seed=7)
    np.testing.assert_array_equal(full, again)
    order = np.array([17, 2, 29, 2])
    np.testing.assert_array_equal(sample_negatives(hist, order, 50, 20, seed=7), full[order])
    for u in (0, 13):
        np.testing.assert_array_equal(sample_negatives(hist, [u], 50, 20, seed=7)[0], full[u])
    assert not np.array_equal(sample_negatives(hist, np.arange(30), 50, 20, seed=8), full)


def test_sample_negatives_is_roughly_uniform_over_allowed_items():
    hist = Sequences.from_rows([[0, 1, 2]] * 200)  # 7 allowed items out of 10
    counts = np.bincount(sample_negatives(hist, np.arange(200), 10, 100, 0).ravel(), minlength=10)
    assert counts[:3].sum() == 0
    expected = 200 * 100 / 7
    assert np.all(np.abs(counts[3:] - expected) < 5 * np.sqrt(expected))


def test_sample_negatives_raises_when_nothing_is_left():
    with pytest.raises(ValueError, match="every item"):
        sample_negatives(Sequences.from_rows([[0, 1, 2], [2, 1, 0]]), np.array([0]), 3, 5, 0)
    assert sample_negatives(Sequences.from_rows([[0]]), np.array([0]), 3, 0, 0).shape == (1, 0)
