"""Splits: leave-one-out, temporal ratio, held-out users with fold-in, pre-split files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrec.data.formats import read_interactions
from jaxrec.data.interactions import Interactions, Sequences
from jaxrec.data.splits import (
    _concat,
    align_vocab,
    heldout_users,
    leave_one_out,
    make_split,
    presplit,
    temporal_ratio,
    valid_into_train,
)
from jaxrec.errors import ConfigError

DATA = Path(os.environ.get("JAXREC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))


def lists(seqs: Sequences) -> list[list[int]]:
    return [seqs.row(u).tolist() for u in range(seqs.num_rows)]


def users_with_lengths(lengths: list[int]) -> Interactions:
    """User u has lengths[u] events on items 0, 1, 2, ... in that order (raw ids = dense)."""
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.concatenate([np.arange(n) for n in lengths])
    return Interactions.from_raw(users, items, np.arange(len(users)) * 1.0)


def test_leave_one_out():
    split = leave_one_out(users_with_lengths([4, 2, 3]))
    assert lists(split.train) == [[0, 1], [0, 1], [0]]
    assert lists(split.valid_target) == [[2], [], [1]]
    assert lists(split.test_input) == [[0, 1, 2], [0, 1], [0, 1]]
    assert lists(split.test_target) == [[3], [], [2]]
    assert split.eval_users("test").tolist() == [0, 2]


def test_temporal_ratio_counts():
    # RecBole's rule: n=1 → (1,0,0); 2 → (1,0,1); 3 → (1,1,1); 10 → (8,1,1); 20 → (16,2,2)
    split = temporal_ratio(users_with_lengths([1, 2, 3, 10, 20]))
    assert [len(r) for r in lists(split.train)] == [1, 1, 1, 8, 16]
    assert [len(r) for r in lists(split.valid_target)] == [0, 0, 1, 1, 2]
    assert [len(r) for r in lists(split.test_target)] == [0, 1, 1, 1, 2]
    assert lists(split.test_target)[4] == [18, 19] and lists(split.valid_target)[4] == [16, 17]
    assert lists(split.test_input)[4] == list(range(18))
    assert lists(split.valid_input) == lists(split.train)


def test_temporal_ratio_float_guard_and_errors():
    # 0.7 * 10 = 7.000000000000001 and 0.3 * 10 = 3.0000000000000004 must give 3 and 7
    split = temporal_ratio(users_with_lengths([10]), valid=0.0, test=0.3)
    assert [len(r) for r in lists(split.test_target)] == [3]
    with pytest.raises(ConfigError):
        temporal_ratio(users_with_lengths([3]), valid=0.5, test=0.5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=20), st.sampled_from([0.1, 0.2, 0.25]))
def test_temporal_ratio_partitions_each_user(lengths, frac):
    data = users_with_lengths(lengths)
    split = temporal_ratio(data, valid=frac, test=frac)
    seqs = data.sequences()
    for u in range(data.num_users):
        parts = [split.train.row(u), split.valid_target.row(u), split.test_target.row(u)]
        assert np.concatenate(parts).tolist() == seqs.row(u).tolist()  # chronological cut
        assert len(parts[0]) >= 1


def test_valid_into_train_refits_on_the_validation_targets():
    split = leave_one_out(users_with_lengths([4, 2, 3]))
    refit = valid_into_train(split)
    assert lists(refit.train) == [[0, 1, 2], [0, 1], [0, 1]]  # each user's test input
    assert lists(refit.valid_input) == lists(refit.train)
    assert lists(refit.valid_target) == [[], [], []] and refit.eval_users("valid").size == 0
    for name in ("test_input", "test_target"):  # test untouched
        assert lists(getattr(refit, name)) == lists(getattr(split, name))
    assert refit.name == "leave_one_out, valid in train"
    # DiffRec's rule: the test input stays the train rows, train + valid stay excluded.
    train = Interactions.from_raw(np.array([1, 1, 2]), np.array([10, 11, 10]))
    valid = Interactions.from_raw(np.array([1, 2]), np.array([12, 11]))
    test = Interactions.from_raw(np.array([2]), np.array([12]))
    diffrec = valid_into_train(presplit(train, valid, test, test_input="train"))
    assert lists(diffrec.train) == [[0, 1, 2], [0, 1]]
    assert lists(diffrec.test_input) == [[0, 1], [0]]
    assert lists(diffrec.seen("test")) == [[0, 1, 2], [0, 1]]


def test_valid_into_train_errors():
    with pytest.raises(ConfigError, match="no validation events"):
        valid_into_train(presplit(users_with_lengths([2]), None, users_with_lengths([3])))
    held = heldout_users(users_with_lengths([20] * 6 + [10] * 4), 2, 2, fold_in=0.8, seed=0)
    with pytest.raises(ConfigError, match="held-out users"):
        valid_into_train(held)


def test_heldout_users_protocol():
    lengths = [20] * 6 + [3] + [10] * 3  # >= 2 train users have all 20 items
    data = users_with_lengths(lengths)
    split = heldout_users(data, num_valid_users=2, num_test_users=2, fold_in=0.8, seed=3)
    train_rows = [u for u in range(10) if split.train.row(u).size]
    held = [u for u in range(10) if u not in train_rows]
    assert len(train_rows) == 6 and len(held) == 4
    valid_users = [u for u in held if split.valid_input.row(u).size]
    test_users = [u for u in held if split.test_input.row(u).size]
    assert len(valid_users) == 2 and len(test_users) == 2
    seqs = data.sequences()
    for u in train_rows:
        assert split.train.row(u).tolist() == seqs.row(u).tolist()
    for u in held:
        inp, tgt = (
            split.stage("valid" if u in valid_users else "test")[k].row(u).tolist() for k in (0, 1)
        )
        assert sorted(inp + tgt) == seqs.row(u).tolist()  # every event kept exactly once
        assert inp == sorted(inp) and tgt == sorted(tgt)  # rows stay chronological
        assert len(tgt) == (0 if lengths[u] < 5 else lengths[u] // 5)  # 20% of n, n >= 5 only
    # same seed → same split; another seed → another choice of users or targets
    again = heldout_users(data, 2, 2, seed=3)
    assert lists(again.test_target) == lists(split.test_target)
    other = [lists(heldout_users(data, 2, 2, seed=s).test_target) for s in range(4, 8)]
    assert any(o != lists(split.test_target) for o in other)


def test_heldout_users_drops_items_unknown_to_train():
    # user 1 (held out with seed 0 below) has item 9 that nobody else has
    users = [0] * 5 + [1] * 6
    items = [0, 1, 2, 3, 4] + [0, 1, 2, 3, 4, 9]
    data = Interactions.from_raw(np.array(users), np.array(items))
    for seed in range(20):
        split = heldout_users(data, num_valid_users=0, num_test_users=1, seed=seed)
        if split.test_input.row(1).size:
            break
    held_items = split.test_input.row(1).tolist() + split.test_target.row(1).tolist()
    assert sorted(held_items) == [0, 1, 2, 3, 4] and split.num_items == 6
    with pytest.raises(ConfigError, match="leaves no train user"):
        heldout_users(data, 1, 1)


def test_presplit_shared_vocab():
    train = Interactions.from_raw(np.array([1, 1, 2]), np.array([10, 11, 10]))
    valid = Interactions.from_raw(np.array([1]), np.array([12]))
    test = Interactions.from_raw(np.array([2, 3]), np.array([11, 13]))  # user 3, item 13 new
    split = presplit(train, valid, test)
    assert (split.num_users, split.num_items) == (3, 4)
    assert lists(split.train) == [[0, 1], [0], []]
    assert lists(split.valid_target) == [[2], [], []]
    assert lists(split.test_input) == [[0, 1, 2], [0], []]
    assert lists(split.test_target) == [[], [1], [3]]
    aligned = align_vocab(train, valid, test)
    assert aligned[2].user_vocab.tolist() == ["1", "2", "3"]
    assert aligned[2].item_vocab.tolist() == ["10", "11", "12", "13"]
    no_valid = presplit(train, None, test)
    assert lists(no_valid.valid_target) == [[], [], []] and no_valid.num_items == 3


def test_presplit_diffrec_rule_reads_train_and_excludes_train_and_valid():
    from jaxrec import evaluation

    train = Interactions.from_raw(np.array([1, 1, 2]), np.array([10, 11, 10]))
    valid = Interactions.from_raw(np.array([1]), np.array([12]))
    test = Interactions.from_raw(np.array([1, 2]), np.array([13, 11]))
    split = presplit(train, valid, test, test_input="train")
    assert lists(split.test_input) == [[0, 1], [0]]  # the model reads train only
    assert lists(split.seen("test")) == [[0, 1, 2], [0]]  # ranking excludes train + valid
    assert lists(split.seen("valid")) == lists(split.valid_input)
    # A scorer that prefers item 2 (user 0's validation item): excluded, so 3 ranks first.
    scores = np.array([[0.0, 0.0, 9.0, 1.0, 0.5]])[:, :4]

    def score_fn(users, ids, mask):
        assert mask.sum(1).tolist() == [split.test_input.lengths[u] for u in users]
        return np.repeat(scores, len(users), 0)

    ids, _ = evaluation.recommend(score_fn, split, "test", np.array([0]), 1)
    assert ids.tolist() == [[3]]
    r = evaluation.evaluate(score_fn, split, "test", ks=(1,), chunk_size=1)
    assert r["hr@1"] == 0.5  # user 0 hits 13 (dense 3); user 1 ranks 12 (not seen) over 11
    with pytest.raises(ConfigError, match="test_input"):
        presplit(train, valid, test, test_input="valid")


def test_concat_matches_sequences_concat():
    a = Sequences.from_rows([[1, 2], [], [3]])
    b = Sequences.from_rows([[4], [5, 6], []])
    assert lists(_concat(a, b)) == lists(a.concat(b)) == [[1, 2, 4], [5, 6], [3]]


def test_make_split():
    data = users_with_lengths([4, 5])
    assert lists(make_split(data, "leave_one_out").test_target) == [[3], [4]]
    assert make_split(data, "temporal_ratio", valid=0.2, test=0.2).name == "temporal_ratio"
    three = users_with_lengths([6, 6, 6])
    held = make_split(three, "heldout_users", num_valid_users=1, num_test_users=1, seed=0)
    assert held.name == "heldout_users" and len(held.eval_users("test")) == 1
    with pytest.raises(ConfigError, match="did you mean 'temporal_ratio'"):
        make_split(data, "temporal_ration")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        make_split(data, "leave_one_out", valid=0.1)


needs_data = pytest.mark.skipif(
    not (DATA / "ml-1m-diffrec-clean" / "train_list.npy").exists(),
    reason=f"real data sets not found at {DATA} (set JAXREC_DATA_DIR)",
)


@needs_data
def test_presplit_diffrec_ml1m():
    names = ("train", "valid", "test")
    parts = [read_interactions(DATA / "ml-1m-diffrec-clean" / f"{k}_list.npy") for k in names]
    split = presplit(*parts)
    assert (split.num_users, split.num_items) == (5949, 2810)
    sizes = [len(s.items) for s in (split.train, split.valid_target, split.test_target)]
    assert sizes == [403277, 110722, 57532]
    assert len(split.eval_users("test")) == 5949


@needs_data
def test_presplit_irgan_keeps_test_only_items():
    cols = {"user": 0, "item": 1, "rating": 2}
    root = DATA / "ml-100k-irgan-split"
    train, test = (
        read_interactions(root / f"movielens-100k-{k}.txt", "csv", columns=cols)
        for k in ("train", "test")
    )
    split = presplit(train, None, test)
    union = set(train.item_vocab) | set(test.item_vocab)
    assert split.num_items == len(union) > train.num_items
    assert len(split.test_target.items) == 20000


def test_load_split_train_on_valid():
    from jaxrec.config import DataConfig, SyntheticConfig
    from jaxrec.data.load import load_split

    cfg = DataConfig(synthetic=SyntheticConfig(num_users=40, num_items=30, mean_length=6))
    _, split = load_split(cfg)
    _, refit = load_split(dataclasses.replace(cfg, train_on_valid=True))
    assert lists(refit.train) == lists(split.test_input)
    assert refit.eval_users("valid").size == 0
    assert lists(refit.test_target) == lists(split.test_target)
