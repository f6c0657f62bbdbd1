"""Interactions, Sequences, the rating and k-core filters, and describe()."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrec.data.interactions import (
    Interactions,
    Sequences,
    describe,
    filter_k_core,
    filter_rating,
)
from jaxrec.errors import DataError


def events(data: Interactions) -> list[tuple[str, str]]:
    return list(
        zip(
            data.user_vocab[data.user_ids].tolist(),
            data.item_vocab[data.item_ids].tolist(),
            strict=True,
        )
    )


def test_from_raw_orders_and_vocab():
    data = Interactions.from_raw(
        ["10", "2", "10", "2"], ["b", "a", "a", "c"], [5, 3, 1, 3], [1, 2, 3, 4], source="m"
    )
    assert data.user_vocab.tolist() == ["2", "10"]  # numeric order, not "10" < "2"
    assert data.item_vocab.tolist() == ["a", "b", "c"]
    # by user, then time; the tie at t=3 keeps input order (a before c)
    assert events(data) == [("2", "a"), ("2", "c"), ("10", "a"), ("10", "b")]
    assert data.ratings.tolist() == [2.0, 4.0, 3.0, 1.0]


def test_integer_ids_match_string_ids():
    users, items = np.array([30, 4, 4, 100]), np.array([7, 7, 1, 2])
    a = Interactions.from_raw(users, items)
    b = Interactions.from_raw(users.astype(str), items.astype(str))
    for field in ("user_ids", "item_ids", "user_vocab", "item_vocab"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.user_vocab.dtype.kind == "U"


def test_from_raw_empty_is_data_error():
    with pytest.raises(DataError, match="no interactions"):
        Interactions.from_raw(np.array([], dtype=np.int64), np.array([], dtype=np.int64))


def test_sequences_and_select():
    data = Interactions.from_raw(["a", "a", "b", "c"], ["x", "y", "x", "z"], [1, 2, 1, 1])
    seqs = data.sequences()
    assert seqs.indptr.tolist() == [0, 2, 3, 4] and seqs.row(0).tolist() == [0, 1]
    ids, mask = Sequences.from_rows([[1, 2, 3], [4]]).padded(np.array([0, 1]), 2)
    assert ids.tolist() == [[2, 3], [0, 4]] and mask.tolist() == [[True, True], [False, True]]
    kept = data.select(data.item_ids != 0)  # drop item x: user b disappears
    assert kept.user_vocab.tolist() == ["a", "c"] and events(kept) == [("a", "y"), ("c", "z")]


@pytest.mark.parametrize("left", [True, False])
def test_padded_keeps_each_rows_newest_items_against_a_loop(left):
    rng = np.random.default_rng(0)
    seqs = Sequences.from_rows([rng.integers(0, 99, rng.integers(0, 9)) for _ in range(40)])
    rows = rng.integers(0, 40, 60)
    for width in (0, 1, 4, 8, 12):
        ids, mask = seqs.padded(rows, width, left=left)
        assert ids.shape == mask.shape == (60, width) and ids.dtype == np.int32
        for j, u in enumerate(rows):
            newest = seqs.row(u)[len(seqs.row(u)) - min(width, len(seqs.row(u))) :]
            assert ids[j][mask[j]].tolist() == newest.tolist()
            cols = np.flatnonzero(mask[j])  # one block, at the right (left=True) or left end
            want = np.arange(width - len(newest), width) if left else np.arange(len(newest))
            assert cols.tolist() == want.tolist() and not ids[j][~mask[j]].any()


def test_filter_rating():
    data = Interactions.from_raw(["a", "a", "b"], ["x", "y", "y"], ratings=[5, 3, 4])
    kept = filter_rating(data, 4)
    assert events(kept) == [("a", "x"), ("b", "y")] and kept.ratings.tolist() == [5.0, 4.0]
    assert filter_rating(data, 1) is data
    with pytest.raises(DataError, match="no event has rating >= 6"):
        filter_rating(data, 6)
    with pytest.raises(DataError, match="field 'rating': this data has no ratings"):
        filter_rating(Interactions.from_raw(["a"], ["x"]), 4)


# users a..d × items; the iterative 2-core must cascade: dropping d removes item z, which
# leaves c with one event, which drops c, which leaves item w with one event.
CASCADE = [
    ("a", "x"),
    ("a", "y"),
    ("b", "x"),
    ("b", "y"),
    ("c", "w"),
    ("c", "z"),
    ("d", "z"),
    ("a", "w"),
]


def test_k_core_iterative_and_single_pass():
    data = Interactions.from_raw(*zip(*CASCADE, strict=True))
    core = filter_k_core(data, min_user=2, min_item=2)
    assert sorted(events(core)) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    # single pass, counts from the input: d (1 event) goes; items all have >= 2 events
    once = filter_k_core(data, min_user=2, min_item=2, iterative=False)
    assert sorted(events(once)) == sorted(e for e in CASCADE if e[0] != "d")
    assert filter_k_core(data) is data
    with pytest.raises(DataError, match="removed every event"):
        filter_k_core(data, min_user=10)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40),
    k=st.integers(1, 4),
)
def test_k_core_property(pairs, k):
    data = Interactions.from_raw(*map(np.array, zip(*pairs, strict=True)))
    try:
        core = filter_k_core(data, k, k)
    except DataError:
        return
    assert np.bincount(core.user_ids).min() >= k and np.bincount(core.item_ids).min() >= k
    assert set(events(core)) <= set(events(data))


def test_describe():
    data = Interactions.from_raw(
        ["a", "a", "b", "a"], ["x", "y", "x", "x"], [3, 1, 2, 4], [4.0, 5.0, 4.0, 1.0], source="s"
    )
    stats = describe(data)
    json.dumps(stats)  # plain Python values only
    assert stats["users"] == 2 and stats["items"] == 2 and stats["events"] == 4
    assert stats["density"] == 1.0 and stats["repeated_pairs"] == 1
    assert stats["sequence_length"] == {"min": 1, "mean": 2.0, "median": 2.0, "max": 3}
    assert stats["ratings"] == {"1": 1, "4": 2, "5": 1}
    assert stats["timestamps"] == {"min": 1.0, "max": 4.0}
    assert describe(Interactions.from_raw(["a"], ["x"]))["ratings"] is None


def test_describe_bins_continuous_ratings():
    scores = np.linspace(0, 1, 50)
    stats = describe(Interactions.from_raw(np.zeros(50, int), np.arange(50), ratings=scores))
    assert len(stats["ratings"]) == 10 and sum(stats["ratings"].values()) == 50
    assert next(iter(stats["ratings"])) == "[0, 0.1)" and list(stats["ratings"])[-1] == "[0.9, 1]"


def test_remap_looks_ids_up_in_saved_vocabularies_and_reports_the_rest():
    from jaxrec.data.interactions import remap

    saved_users, saved_items = np.array(["a", "b", "c"]), np.array(["x", "y", "z"])
    now = Interactions.from_raw(
        np.array(["a", "b", "b", "d"]), np.array(["y", "x", "w", "z"]), np.arange(4.0)
    )
    out, report = remap(now, saved_users, saved_items)
    assert out.user_vocab.tolist() == ["a", "b", "c"] and out.item_vocab.tolist() == ["x", "y", "z"]
    assert list(zip(out.user_ids.tolist(), out.item_ids.tolist(), strict=True)) == [(0, 1), (1, 0)]
    assert report["unknown_users"] == 1 and report["unknown_user_examples"] == ["d"]
    assert report["unknown_items"] == 1 and report["unknown_item_examples"] == ["w"]
    assert report["dropped_events"] == 2  # (b, w) and (d, z)
    assert report["absent_users"] == 1 and report["absent_items"] == 1  # c and z
    same, none = remap(out, saved_users, saved_items)
    assert none is None and same is out
