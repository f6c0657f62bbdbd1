"""grain input pipelines (numpy only: no jax arrays here).

Session-parallel mini-batches (GRU4Rec, Hidasi et al. 2016, §3.1.1): B streams each read one
sequence after another; at every step each stream contributes (current item → next item),
and a stream that starts a new sequence flags `reset` so the model zeroes its state there.
A stream that finds no sequence left is masked (`valid` False); the official PyTorch code
drops such streams from the batch instead, which is the same computation. The schedule of
an epoch is a pure function of (data, seed, epoch), so the pipeline is deterministic and
grain's iterator state (an index) is all a checkpoint needs.

Batches are blocks of T consecutive mini-batches (`train.steps_per_call`), [T, B] arrays,
so one compiled call runs T updates with `lax.scan`. Keys starting with "_" are host-side
bookkeeping and never reach the device.
"""

from __future__ import annotations

import heapq
import threading

import grain
import numpy as np

from jaxrec.data.interactions import Sequences


def session_parallel_schedule(
    seqs: Sequences, order: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """Lay the rows `order` (each with ≥ 2 items) onto `batch_size` streams.

    Sequences go, in `order`, to the stream that frees up first (lowest stream index on
    ties), exactly as the official iterator refills finished streams in index order.
    Returns int32 `inputs`, `targets` and bool `reset`, `valid`, each [S, B].
    """
    lengths = seqs.lengths[order] - 1  # transitions per sequence
    heap = [(0, b) for b in range(batch_size)]
    start = np.empty(len(order), dtype=np.int64)
    stream = np.empty(len(order), dtype=np.int64)
    for i, n in enumerate(lengths.tolist()):
        t, b = heapq.heappop(heap)
        start[i], stream[i] = t, b
        heapq.heappush(heap, (t + n, b))
    num_steps = int((start + lengths).max()) if len(order) else 0
    which = np.repeat(np.arange(len(order)), lengths)
    first = np.cumsum(lengths) - lengths
    offset = np.arange(len(which)) - first[which]  # position inside its sequence
    step, col = start[which] + offset, stream[which]
    src = seqs.indptr[order][which] + offset

    out = {
        "inputs": np.zeros((num_steps, batch_size), np.int32),
        "targets": np.zeros((num_steps, batch_size), np.int32),
        "reset": np.zeros((num_steps, batch_size), bool),
        "valid": np.zeros((num_steps, batch_size), bool),
    }
    out["inputs"][step, col] = seqs.items[src]
    out["targets"][step, col] = seqs.items[src + 1]
    out["reset"][step, col] = offset == 0
    out["valid"][step, col] = True
    return out


class SessionParallelBlocks:
    """grain random-access source: element i = block (epoch, j) of T session-parallel steps.

    Every epoch gets the same number of slots, an upper bound on its blocks (list
    scheduling ends by total/B + longest); slots past the end of an epoch's schedule come
    back empty and are filtered out. `columns` selects this process's streams.
    """

    def __init__(self, seqs, *, batch_size, steps_per_call, epochs, seed, shuffle, columns=None):
        self.seqs = seqs
        self.rows = np.flatnonzero(seqs.lengths >= 2)
        self.batch_size, self.T = batch_size, steps_per_call
        self.epochs, self.seed, self.shuffle = epochs, seed, shuffle
        self.columns = slice(None) if columns is None else columns
        n = self.seqs.lengths[self.rows] - 1
        bound = int(np.ceil(n.sum() / batch_size)) + int(n.max(initial=0))
        self.slots = bound // steps_per_call + 2
        self._lock = threading.Lock()
        self._cache: tuple[int, dict] | None = None

    def __len__(self) -> int:
        return self.epochs * self.slots

    def schedule(self, epoch: int) -> dict[str, np.ndarray]:
        with self._lock:
            if self._cache is None or self._cache[0] != epoch:
                order = self.rows
                if self.shuffle:
                    order = np.random.default_rng([self.seed, epoch]).permutation(order)
                self._cache = (epoch, session_parallel_schedule(self.seqs, order, self.batch_size))
            return self._cache[1]

    def __getitem__(self, index: int) -> dict[str, np.ndarray] | None:
        epoch, j = divmod(int(index), self.slots)
        sched = self.schedule(epoch)
        num_steps = sched["inputs"].shape[0]
        lo, hi = j * self.T, (j + 1) * self.T
        if lo >= num_steps:
            return None
        block = {}
        for key, a in sched.items():
            part = a[lo:hi, self.columns]
            pad = self.T - part.shape[0]  # last block of the epoch: pad with invalid steps
            block[key] = np.pad(part, ((0, pad), (0, 0))) if pad else part
        block["_epoch"] = np.int64(epoch)
        block["_last"] = np.bool_(hi >= num_steps)
        return block


def session_parallel_dataset(seqs: Sequences, **kwargs) -> grain.IterDataset:
    """A checkpointable grain dataset of session-parallel blocks (see `SessionParallelBlocks`)."""
    source = SessionParallelBlocks(seqs, **kwargs)
    # One reader thread keeps epochs in order for the schedule cache; the work per block is
    # a slice, so more threads would not help.
    options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
    return grain.MapDataset.source(source).to_iter_dataset(options)
