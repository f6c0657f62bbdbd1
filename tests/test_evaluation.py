"""The chunked evaluator against a straightforward numpy reference; recommend's exclusions."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import evaluation
from jaxrec.data.interactions import Interactions, Sequences
from jaxrec.data.splits import Split, leave_one_out
from jaxrec.errors import ConfigError
from jaxrec.evaluation import evaluate, format_metrics, recommend
from jaxrec.metrics import sample_negatives

NUM_USERS, NUM_ITEMS = 23, 40


def _split(seed=0) -> Split:
    """Random leave-one-out data: 23 users (two too short to evaluate), distinct items per row."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(NUM_USERS):
        n = 2 if u in (5, 11) else int(rng.integers(3, 25))
        users += [u] * n
        items += list(rng.choice(NUM_ITEMS, size=n, replace=False))
    events = np.arange(len(users))
    split = leave_one_out(Interactions.from_raw(np.array(users), np.array(items), events))
    assert split.num_items == NUM_ITEMS
    return split


def _multi_target_split() -> Split:
    """The same users with 1-4 test targets each (a held-out style protocol)."""
    base, rng = _split(1), np.random.default_rng(2)
    targets = []
    for u in range(base.num_users):
        free = np.setdiff1d(np.arange(NUM_ITEMS), base.test_input.row(u))
        n = 0 if u == 3 else int(rng.integers(1, 5))
        targets.append(rng.choice(free, size=n, replace=False))
    return dataclasses.replace(base, test_target=Sequences.from_rows(targets))


def _table_scorer(seed=0):
    """A fixed score per (user, item), rounded so that ties occur."""
    table = np.round(np.random.default_rng(seed).random((NUM_USERS, NUM_ITEMS)), 1)
    table = table.astype(np.float32)

    def score_fn(users, hist_ids, hist_mask):
        return jnp.asarray(table[np.asarray(users)])

    return table, score_fn


def _reference_full(table, split, stage, ks, denominator):
    """Metrics one user at a time, the way a textbook would write them."""
    inputs, targets = split.stage(stage)
    sums, users = {}, split.eval_users(stage)
    for u in users:
        s = table[u].astype(np.float64)
        s[inputs.row(u)] = -np.inf
        order = np.argsort(-s, kind="stable")  # ties toward the lower item id
        order = order[np.isfinite(s[order])]
        rel = set(targets.row(u).tolist())
        for k in ks:
            hits = [int(i) in rel for i in order[:k]]
            n_ideal = min(k, len(rel))
            dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / np.log2(r + 2) for r in range(n_ideal))
            first = next((r for r, h in enumerate(hits) if h), None)
            denom = n_ideal if denominator == "min" else len(rel)
            for name, v in (
                ("hr", float(any(hits))),
                ("recall", sum(hits) / denom),
                ("ndcg", dcg / idcg),
                ("mrr", 0.0 if first is None else 1 / (first + 1)),
                ("precision", sum(hits) / k),
            ):
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
    return {name: v / len(users) for name, v in sums.items()}


def _assert_metrics_equal(result, reference, rtol=1e-5):
    for name, v in reference.items():
        np.testing.assert_allclose(result[name], v, rtol=rtol, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("stage", ["valid", "test"])
def test_full_ranking_matches_numpy_reference_for_every_chunk_size(stage):
    split = _split()
    table, score_fn = _table_scorer()
    reference = _reference_full(table, split, stage, (1, 5, 10), "min")
    results = [
        evaluate(score_fn, split, stage, ks=(1, 5, 10), chunk_size=c, max_history=4)
        for c in (3, 7, 1024)
    ]
    for r in results:
        assert r["protocol"] == "full" and r["stage"] == stage
        assert r["num_users"] == len(split.eval_users(stage)) == NUM_USERS - 2
        _assert_metrics_equal(r, reference)
        assert r["hr@10"] == results[0]["hr@10"]  # sums of 0/1: exactly equal
        assert r["seconds"] > 0 and r["users_per_second"] > 0


@pytest.mark.parametrize("denominator", ["min", "all"])
def test_multiple_targets_and_recall_denominators_match_reference(denominator):
    split = _multi_target_split()
    table, score_fn = _table_scorer(4)
    assert 3 not in split.eval_users("test")  # a user without targets is not evaluated
    reference = _reference_full(table, split, "test", (2, 5), denominator)
    for chunk in (3, 1024):
        r = evaluate(score_fn, split, "test", ks=(2, 5), chunk_size=chunk,
                     recall_denominator=denominator)  # fmt: skip
        _assert_metrics_equal(r, reference)
        assert r["recall_denominator"] == denominator


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_target_rank_path_equals_the_top_k_path(seed):
    """One target per user is ranked by counting, not by a top-k: the sums must equal the
    top-k path's (the same targets padded to two columns) with ties, repeated and padded seen
    ids, targets inside the seen row, -inf scores and a user without a target."""
    rng = np.random.default_rng(seed)
    B, I, L = 64, 50, 12
    scores = np.round(rng.random((B, I)), 1).astype(np.float32)  # many ties
    scores[rng.random((B, I)) < 0.05] = -np.inf
    seen = rng.integers(0, I, (B, L)).astype(np.int32)
    seen[:, 1::3] = seen[:, ::3][:, : seen[:, 1::3].shape[1]]  # repeated items
    seen_mask = rng.random((B, L)) < 0.8
    target = rng.integers(0, I, (B, 1)).astype(np.int32)
    target[:8, 0] = seen[:8, 0]  # seen targets: excluded, always a miss
    seen_mask[:8, 0] = True
    target[8:12, 0] = np.argmax(np.where(np.isinf(scores[8:12]), 2.0, scores[8:12]), 1)
    scores[8:12][np.arange(4), target[8:12, 0]] = -np.inf  # a target scored -inf
    target[12:20, 0] = np.argmax(scores[12:20], axis=1)  # tops of their rows
    tmask = np.ones((B, 1), bool)
    tmask[20] = False
    valid = np.ones(B, np.float32)
    valid[-3:] = 0.0
    ks = (1, 3, 10)
    fast = evaluation._full_step(scores, seen, seen_mask, target, tmask, valid, ks=ks,
                                 recall_denominator="min")  # fmt: skip
    pad = np.zeros((B, 1), np.int32)
    slow = evaluation._full_step(
        scores,
        seen,
        seen_mask,
        np.c_[target, pad],
        np.c_[tmask, pad > 0],
        valid,
        ks=ks,
        recall_denominator="min",
    )
    assert sorted(fast) == sorted(slow)
    for name in slow:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-6, err_msg=name)
    assert 0 < float(fast["hr@10"]) < float(fast["weight"]) == B - 4


def test_sampled_protocol_matches_reference_and_is_labelled():
    split = _split()
    table, score_fn = _table_scorer(5)
    inputs, targets = split.stage("test")
    users = split.eval_users("test")
    negatives = sample_negatives(inputs.concat(targets), users, NUM_ITEMS, 9, seed=11)
    hr, ndcg = 0.0, 0.0
    for u, neg in zip(users, negatives, strict=True):
        rank = int(np.sum(table[u, neg] > table[u, targets.row(u)[0]]))
        hr += rank < 3
        ndcg += (rank < 3) / np.log2(rank + 2)
    for chunk in (3, 7, 1024):
        r = evaluate(score_fn, split, "test", ks=(3,), protocol="sampled", num_negatives=9,
                     chunk_size=chunk, seed=11)  # fmt: skip
        assert r["protocol"] == "sampled-9" and "recall@3" not in r
        np.testing.assert_allclose(r["hr@3"], hr / len(users), rtol=1e-6)
        np.testing.assert_allclose(r["ndcg@3"], ndcg / len(users), rtol=1e-5)
    assert format_metrics(r).startswith(f"test sampled-9 ({len(users)} users): HR@3 ")


def test_format_metrics_one_line():
    table, score_fn = _table_scorer()
    r = evaluate(score_fn, _split(), "test", ks=(10,))
    line = format_metrics(r)
    assert line.startswith("test full-ranking (21 users): HR@10 ")
    assert "NDCG@10" in line and "MRR@10" in line and "\n" not in line


def test_evaluate_rejects_bad_calls():
    split = _split()
    _, score_fn = _table_scorer()
    with pytest.raises(ConfigError, match="protocol"):
        evaluate(score_fn, split, "test", protocol="loo")
    with pytest.raises(ConfigError, match="shape"):
        evaluate(lambda u, h, m: jnp.zeros((len(u), 3)), split, "test")
    with pytest.raises(ConfigError, match="one target"):
        evaluate(score_fn, _multi_target_split(), "test", protocol="sampled")
    with pytest.raises(ConfigError, match="ks"):
        evaluate(score_fn, split, "test", ks=(NUM_ITEMS + 1,))


def test_recommend_never_returns_excluded_items():
    split = _split()
    _, score_fn = _table_scorer()
    users = np.arange(NUM_USERS)
    for stage in ("valid", "test"):
        inputs, _ = split.stage(stage)
        ids, scores = recommend(score_fn, split, stage, users, 10, chunk_size=4, max_history=2)
        assert ids.shape == (NUM_USERS, 10) and ids.dtype == np.int32
        assert scores.dtype == np.float32
        for u in users:
            assert not np.isin(ids[u], inputs.row(u)).any()
            assert np.all(np.diff(scores[u]) <= 0)
    # Leave-one-out test input holds the validation item: it is never recommended at test.
    ids, _ = recommend(score_fn, split, "test", users, 10)
    for u in split.eval_users("test"):
        assert split.valid_target.row(u)[0] not in ids[u]


def test_recommend_excludes_whole_row_not_just_model_history():
    split = _split()

    # Scores favour a user's oldest items; the model only sees the last 2 of them.
    def score_fn(users, hist_ids, hist_mask):
        scores = np.zeros((len(users), NUM_ITEMS), np.float32)
        for i, u in enumerate(np.asarray(users)):
            row = split.test_input.row(int(u))
            scores[i, row] = np.arange(len(row), 0, -1) + 100.0
        return jnp.asarray(scores)

    users = split.eval_users("test")
    ids, _ = recommend(score_fn, split, "test", users, 5, max_history=2)
    for u, rec in zip(users, ids, strict=True):
        assert not np.isin(rec, split.test_input.row(u)).any()


def test_recommend_pads_with_minus_one_when_catalogue_runs_out():
    split = _split()
    _, score_fn = _table_scorer()
    u = int(np.argmax(split.test_input.lengths))
    left = NUM_ITEMS - split.test_input.lengths[u]
    ids, scores = recommend(score_fn, split, "test", [u], NUM_ITEMS)
    assert np.all(ids[0, left:] == -1) and np.all(np.isneginf(scores[0, left:]))
    assert np.all(ids[0, :left] >= 0)
    assert not np.isin(ids[0, :left], split.test_input.row(u)).any()


def test_one_chunk_per_shape_runs_every_shape_of_the_whole_pass_once(monkeypatch):
    """The bench's warm-up: the executables of the whole pass, one chunk of each shape."""
    split = _split()
    _, table_fn = _table_scorer()
    full_step, widths, calls = evaluation._full_step, [], []

    def score_fn(users, hist_ids, hist_mask):
        widths.append(hist_ids.shape)
        return table_fn(users, hist_ids, hist_mask)

    def recorded(scores, seen_ids, seen_mask, tgt_ids, tgt_mask, valid, **kw):
        calls.append((widths[-1], seen_ids.shape, tgt_ids.shape, int(valid.sum())))
        return full_step(scores, seen_ids, seen_mask, tgt_ids, tgt_mask, valid, **kw)

    monkeypatch.setattr(evaluation, "_full_step", recorded)
    runs = {}
    for warm in (False, True):
        calls.clear()
        r = evaluate(score_fn, split, "test", ks=(5,), chunk_size=2, max_history=16,
                     one_chunk_per_shape=warm)  # fmt: skip
        runs[warm] = (list(calls), r["num_users"])
    (whole, n_whole), (warm, n_warm) = runs[False], runs[True]
    shapes = {c[:3] for c in whole}
    assert len(shapes) == 2  # users sorted by length: history widths 8 and 16
    assert len(whole) == 11 and len(warm) == len(shapes) < len(whole)
    assert {c[:3] for c in warm} == shapes
    assert n_warm == sum(c[3] for c in warm) < n_whole == sum(c[3] for c in whole) == 21


def test_input_shapes_counts_the_history_shapes_a_pass_hands_the_scorer():
    split = _split()
    _, table_fn = _table_scorer()
    seen = []

    def score_fn(users, hist_ids, hist_mask):
        seen.append(hist_ids.shape)
        return table_fn(users, hist_ids, hist_mask)

    for chunk_size, max_history in ((2, 16), (4, 8), (1024, 200)):
        seen.clear()
        evaluate(score_fn, split, "test", ks=(5,), chunk_size=chunk_size, max_history=max_history)
        counts = {s: seen.count(s) for s in set(seen)}
        assert (
            evaluation.input_shapes(split, "test", chunk_size=chunk_size, max_history=max_history)
            == counts
        )
    # Input rows of the 21 users, sorted: 2 5 | 6 7 | 7 7 | 8 9 | 11 11 | ... | 23: the first
    # three chunks are at most 7 long (width 8), the other eight need 16 (the cap).
    assert evaluation.input_shapes(split, "test", chunk_size=2, max_history=16) == {
        (2, 8): 3,
        (2, 16): 8,
    }
    assert evaluation.input_shapes(split, "test", users=np.array([], np.int32)) == {}
