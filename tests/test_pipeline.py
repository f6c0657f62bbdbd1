import numpy as np

from jaxrec.data.interactions import Sequences
from jaxrec.data.pipeline import (
    SessionParallelBlocks,
    session_parallel_dataset,
    session_parallel_schedule,
)


def test_schedule_hand_computed():
    # Official iterator: streams refill in index order as sessions end.
    seqs = Sequences.from_rows([[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]])
    out = session_parallel_schedule(seqs, np.array([0, 1, 2]), batch_size=2)
    assert out["inputs"].T.tolist() == [[1, 2, 0, 0], [4, 6, 7, 8]]
    assert out["targets"].T.tolist() == [[2, 3, 0, 0], [5, 7, 8, 9]]
    assert out["reset"].T.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0]]
    assert out["valid"].T.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def _random_seqs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return Sequences.from_rows([rng.integers(0, 30, size=rng.integers(1, 12)) for _ in range(n)])


def test_every_transition_once_per_epoch():
    seqs = _random_seqs()
    order = np.flatnonzero(seqs.lengths >= 2)
    out = session_parallel_schedule(seqs, order, batch_size=4)
    got = sorted(zip(out["inputs"][out["valid"]], out["targets"][out["valid"]], strict=True))
    want = sorted(
        (a, b) for u in order for a, b in zip(seqs.row(u)[:-1], seqs.row(u)[1:], strict=True)
    )
    assert got == want
    # a stream's consecutive valid steps chain item to item unless it resets
    for b in range(4):
        v = out["valid"][:, b]
        for t in range(1, int(v.sum())):
            if not out["reset"][t, b]:
                assert out["inputs"][t, b] == out["targets"][t - 1, b]


def _collect(ds):
    return [b for b in ds]


def test_dataset_deterministic_shuffled_and_epoch_flags():
    seqs = _random_seqs()
    kw = dict(batch_size=4, steps_per_call=5, epochs=2, seed=3, shuffle=True)
    a = _collect(session_parallel_dataset(seqs, **kw))
    b = _collect(session_parallel_dataset(seqs, **kw))
    assert len(a) == len(b) > 2
    for x, y in zip(a, b, strict=True):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    epochs = [int(x["_epoch"]) for x in a]
    assert epochs == sorted(epochs) and set(epochs) == {0, 1}
    assert sum(bool(x["_last"]) for x in a) == 2
    assert all(x["inputs"].shape == (5, 4) for x in a)
    first = [x for x in a if x["_epoch"] == 0]
    second = [x for x in a if x["_epoch"] == 1]
    assert not all(
        np.array_equal(p["inputs"], q["inputs"]) for p, q in zip(first, second, strict=False)
    )


def test_iterator_state_resumes_same_next_batch():
    seqs = _random_seqs()
    kw = dict(batch_size=4, steps_per_call=3, epochs=2, seed=0, shuffle=True)
    it = iter(session_parallel_dataset(seqs, **kw))
    for _ in range(4):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]
    fresh = iter(session_parallel_dataset(seqs, **kw))
    fresh.set_state(state)
    for e in expected:
        got = next(fresh)
        for k in e:
            np.testing.assert_array_equal(got[k], e[k])


def test_process_columns_partition_the_global_batch():
    seqs = _random_seqs()
    kw = dict(batch_size=4, steps_per_call=3, epochs=1, seed=0, shuffle=True)
    full = SessionParallelBlocks(seqs, **kw)
    left = SessionParallelBlocks(seqs, columns=slice(0, 2), **kw)
    right = SessionParallelBlocks(seqs, columns=slice(2, 4), **kw)
    for i in range(len(full)):
        f = full[i]
        if f is None:
            assert left[i] is None
            continue
        np.testing.assert_array_equal(
            np.concatenate([left[i]["inputs"], right[i]["inputs"]], axis=1), f["inputs"]
        )
