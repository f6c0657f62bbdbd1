"""Caser windows and NextItNet rows: brute-force enumeration, negatives, resume, processes."""

import numpy as np
import pytest

from jaxrec.data.interactions import Sequences
from jaxrec.data.windows import CaserWindows, NextItNetRows, caser_dataset, nextitnet_dataset
from jaxrec.errors import ConfigError, DataError

NUM_ITEMS = 30


def _seqs():
    rng = np.random.default_rng(0)
    lengths = [0, 1, 2, 5, 7, 8, 9, 15, 3, 11, 4, 20]
    return Sequences.from_rows([rng.integers(0, NUM_ITEMS, n) for n in lengths])


def _brute_windows(seqs, L, T):
    """The official `_sliding_window`: every L+T window, or one left-padded short row."""
    out = []
    for u in range(seqs.num_rows):
        r = list(seqs.row(u))
        if not r:
            continue
        if len(r) >= L + T:
            wins = [(r[i : i + L + T], [True] * (L + T)) for i in range(len(r) - L - T + 1)]
        else:
            pad = L + T - len(r)
            wins = [([0] * pad + r, [False] * pad + [True] * len(r))]
        out += [(u, tuple(w), tuple(m)) for w, m in wins]
    return sorted(out)


KW = dict(num_items=NUM_ITEMS, length=5, targets=3, negatives=2, batch_size=8, epochs=2, seed=3)


def _rows(batch):
    got = []
    for i in np.flatnonzero(batch["valid"]):
        items = tuple(np.concatenate([batch["ids"][i], batch["targets"][i]]).tolist())
        mask = tuple(np.concatenate([batch["mask"][i], batch["target_mask"][i]]).tolist())
        got.append((int(batch["users"][i]), items, mask))
    return got


def test_caser_windows_equal_brute_force_enumeration_each_epoch():
    seqs = _seqs()
    src = CaserWindows(seqs, **KW)
    want = _brute_windows(seqs, 5, 3)
    assert src.num == len(want)
    epochs = {0: [], 1: []}
    for i in range(len(src)):
        b = src[i]
        assert b["ids"].shape == (8, 5) and b["negatives"].shape == (8, 6)
        assert b["_last"] == (i % src.steps == src.steps - 1)
        assert not b["mask"][~b["valid"]].any()  # padded rows: nothing present
        epochs[int(b["_epoch"])] += _rows(b)
        seen = [set(seqs.row(u)) for u in b["users"]]
        for r in np.flatnonzero(b["valid"]):  # negatives: never an item the user had
            assert not seen[r] & set(b["negatives"][r].tolist())
    assert sorted(epochs[0]) == want and sorted(epochs[1]) == want
    assert epochs[0] != epochs[1]  # reshuffled per epoch


def test_every_item_windows_give_each_later_item_one_window_of_its_predecessors():
    """windows="every-item" (RecBole's): item k ≥ 1 is the first target of one window whose
    input is the up-to-L items before it (left-padded), targets cut at the sequence's end."""
    L, T = 5, 3
    seqs = _seqs()
    want = []
    for u in range(seqs.num_rows):
        r = list(seqs.row(u))
        for k in range(1, len(r)):
            pos = range(k - L, k + T)
            items = tuple(r[p] if 0 <= p < len(r) else 0 for p in pos)
            want.append((u, items, tuple(0 <= p < len(r) for p in pos)))
    src = CaserWindows(seqs, **{**KW, "windows": "every-item"})
    assert src.num == len(want) == sum(max(n - 1, 0) for n in seqs.lengths)
    got = [w for i in range(src.steps) for w in _rows(src[i])]
    assert sorted(got) == sorted(want)
    with pytest.raises(ConfigError, match="every-item"):
        CaserWindows(seqs, **{**KW, "windows": "all"})


def test_negatives_are_uniform_over_unseen_items():
    seqs = Sequences.from_rows([[0, 1, 2, 3], [4]])
    src = CaserWindows(seqs, **{**KW, "num_items": 8, "negatives": 2000, "batch_size": 2})
    neg = src[0]["negatives"]
    row = int(np.flatnonzero(src[0]["users"] == 0)[0])
    counts = np.bincount(neg[row], minlength=8)
    assert counts[:4].sum() == 0 and np.all(np.abs(counts[4:] / 6000 - 0.25) < 0.03)


def test_user_with_every_item_is_an_error():
    with pytest.raises(DataError, match="every item"):
        CaserWindows(Sequences.from_rows([[0, 1, 2]]), **{**KW, "num_items": 3})


@pytest.mark.parametrize("make", [caser_dataset, nextitnet_dataset, "bucketed"])
def test_iterator_state_resumes_same_next_batches(make):
    seqs = _seqs()
    kw = KW if make is caser_dataset else dict(max_length=6, batch_size=4, epochs=2, seed=3)
    if make == "bucketed":
        make, kw = nextitnet_dataset, {**kw, "length_buckets": (2, 4)}
    it = iter(make(seqs, **kw))
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]
    fresh = iter(make(seqs, **kw))
    fresh.set_state(state)
    for e in expected:
        got = next(fresh)
        for k in e:
            np.testing.assert_array_equal(got[k], e[k])


def test_process_slices_partition_the_global_batch():
    seqs = _seqs()
    full = CaserWindows(seqs, **KW)
    parts = [CaserWindows(seqs, **KW, process_index=p, process_count=2) for p in (0, 1)]
    for i in range(len(full)):
        f, a, b = full[i], parts[0][i], parts[1][i]
        for k in ("users", "ids", "targets", "negatives", "valid"):
            np.testing.assert_array_equal(np.concatenate([a[k], b[k]]), f[k])


def test_nextitnet_rows_are_last_items_left_padded_once_per_epoch():
    seqs = _seqs()
    src = NextItNetRows(seqs, max_length=6, batch_size=4, epochs=1, seed=0)
    got = {}
    for i in range(len(src)):
        b = src[i]
        assert b["ids"].shape == (4, 7)
        for r in np.flatnonzero(b["valid"]):
            got[int(b["users"][r])] = b["ids"][r][b["mask"][r]].tolist()
            assert b["mask"][r].tolist() == sorted(b["mask"][r].tolist())  # left padding
        assert not b["mask"][~b["valid"]].any()
    want = {u: seqs.row(u)[-7:].tolist() for u in range(seqs.num_rows) if seqs.lengths[u] >= 2}
    assert got == want


def _long_seqs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(0.15, n) + 1, 40)
    return Sequences.from_rows([rng.integers(0, NUM_ITEMS, k) for k in lengths])


def test_length_buckets_keep_every_row_and_cut_the_padding():
    seqs = _long_seqs()
    kw = dict(max_length=20, batch_size=16, epochs=2, seed=1)
    plain = NextItNetRows(seqs, **kw)
    src = NextItNetRows(seqs, **kw, length_buckets=(3, 7, 12))
    assert len(src) == len(plain)
    want = {u: seqs.row(u)[-21:].tolist() for u in range(seqs.num_rows) if seqs.lengths[u] >= 2}
    for epoch in range(2):
        got, cells = {}, 0
        for i in range(epoch * src.steps, (epoch + 1) * src.steps):
            b = src[i]
            width = b["ids"].shape[1]
            assert width in (4, 8, 13, 21)
            longest = max(int(b["mask"][r].sum()) for r in np.flatnonzero(b["valid"]))
            assert width == min(w for w in (4, 8, 13, 21) if w >= longest)  # the smallest
            for r in np.flatnonzero(b["valid"]):
                assert int(b["users"][r]) not in got  # once per epoch
                got[int(b["users"][r])] = b["ids"][r][b["mask"][r]].tolist()
            assert not b["mask"][~b["valid"]].any()
            assert bool(b["_last"]) == (i == (epoch + 1) * src.steps - 1)
            cells += b["ids"].size
        assert got == want
        assert cells < 0.6 * src.steps * 16 * 21  # most of the fixed width was padding
    # Another epoch, another order.
    first = [tuple(src[i]["users"]) for i in range(src.steps)]
    second = [tuple(src[i]["users"]) for i in range(src.steps, 2 * src.steps)]
    assert first != second


def test_length_buckets_processes_agree_on_the_width():
    seqs = _long_seqs()
    kw = dict(max_length=20, batch_size=8, epochs=1, seed=2, length_buckets=(5, 10))
    full = NextItNetRows(seqs, **kw)
    parts = [NextItNetRows(seqs, **kw, process_index=p, process_count=2) for p in (0, 1)]
    for i in range(len(full)):
        f, a, b = full[i], parts[0][i], parts[1][i]
        for k in ("users", "ids", "mask", "valid"):
            np.testing.assert_array_equal(np.concatenate([a[k], b[k]]), f[k])


def test_bad_length_bucket_is_a_config_error():
    with pytest.raises(ConfigError, match=r"length_buckets \[3, 20\]"):
        NextItNetRows(_long_seqs(), max_length=20, batch_size=8, epochs=1, seed=0,
                      length_buckets=(3, 20))  # fmt: skip
