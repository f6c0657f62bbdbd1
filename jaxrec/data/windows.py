"""grain pipelines of the CNN family (numpy only): Caser sliding windows, NextItNet rows.

Caser (Tang & Wang, WSDM 2018; graytowne/caser_pytorch `to_sequence`): every window of
L + T consecutive items of each user's training sequence, the first L the input and the
last T the targets; a user with fewer than L + T items gives one window, left-padded. With
`windows="every-item"` (RecBole's augmentation) each training item after the first starts
the targets of one window, its up to L predecessors the left-padded input, the targets cut
at the sequence's end: on Games 194,292 windows an epoch instead of 101,343. The
windows are never materialised: window w of an epoch is found from a cumulative count per
user (`searchsorted`), so memory is O(U) plus one permutation of the window ids per epoch.
Each window gets `negatives × T` items drawn uniformly from the items its user never
interacted with in training (the official `_generate_negative_samples`), redrawn every
epoch from a generator seeded by (seed, epoch, mini-batch).

NextItNet (Yuan et al., WSDM 2019): each user with ≥ 2 training items is one row, the last
`max_length + 1` items, left-padded; the model reads items [:-1] and predicts [1:]. With
`length_buckets`, a mini-batch is only as wide as its longest row needs (the smallest
bucket + 1 that holds it): the epoch's permutation is cut into pools of 64 mini-batches,
each pool sorted by row length and cut into mini-batches, and the mini-batches shuffled
again, so users of similar length share a batch. On Games, where 70 % of a fixed-width
batch's positions are padding, buckets (3, 5, 7, 10, 14) of max_length 20 leave 35 % of
the positions (computed from the row lengths); the step compiles once per width.

Both: element i = mini-batch (epoch, j), users permuted per (seed, epoch); the last
mini-batch of an epoch is padded with invalid rows (`valid` False) so every batch has one
shape; host keys `_epoch`, `_last`. An element is a pure function of its index, so grain's
iterator state (an index) is all a checkpoint needs.
"""

from __future__ import annotations

import grain
import numpy as np

from jaxrec.data.interactions import Sequences
from jaxrec.errors import ConfigError, DataError

_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
# Caser's window rules: "official" (graytowne/caser_pytorch: targets from item L on) or
# "every-item" (RecBole's: every training item after the first is a window's first target).
WINDOWS = ("official", "every-item")


def _check_batch(batch_size: int, process_count: int) -> None:
    if batch_size % process_count:
        raise ConfigError(
            f"train.batch_size={batch_size} must be a multiple of the {process_count} processes"
        )


class _Batches:
    """Shared bookkeeping: epochs × steps elements over `num` examples per epoch."""

    def __init__(self, num, batch_size, epochs, seed, shuffle, process_index, process_count):
        _check_batch(batch_size, process_count)
        self.num, self.batch_size, self.epochs = num, batch_size, epochs
        self.seed, self.shuffle = seed, shuffle
        per = batch_size // process_count
        self.columns = slice(process_index * per, (process_index + 1) * per)
        self.steps = -(-num // batch_size)
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.epochs * self.steps

    def chosen(self, index: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(epoch, j, example ids int64 [B] (padding: 0), valid bool [B]) of element `index`."""
        epoch, j = divmod(int(index), self.steps)
        cache = self._cache
        if cache is None or cache[0] != epoch:
            cache = self._cache = (epoch, self.epoch_order(epoch))
        part = cache[1][j * self.batch_size : (j + 1) * self.batch_size]
        ids = np.zeros(self.batch_size, np.int64)
        ids[: len(part)] = part
        valid = np.arange(self.batch_size) < len(part)
        return epoch, j, ids, valid

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Example ids int64 [num] in the epoch's order; mini-batch j is slice j."""
        if not self.shuffle:
            return np.arange(self.num)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num)

    def host_keys(self, epoch: int, j: int) -> dict:
        return {"_epoch": np.int64(epoch), "_last": np.bool_(j == self.steps - 1)}


class CaserWindows(_Batches):
    """grain random-access source of Caser mini-batches (see the module docstring).

    Each element (b = batch_size / process_count): users int32 [b], ids int32 [b, L],
    mask bool [b, L], targets int32 [b, T], target_mask bool [b, T] (False: padding of a
    short window), negatives int32 [b, negatives·T], valid bool [b], `_epoch`, `_last`.
    """

    def __init__(
        self,
        seqs: Sequences,
        *,
        num_items: int,
        length: int,
        targets: int,
        negatives: int,
        batch_size: int,
        epochs: int,
        seed: int,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        windows: str = "official",
    ):
        if windows not in WINDOWS:
            raise ConfigError(f"model.caser.windows={windows!r}: use one of {', '.join(WINDOWS)}")
        self.seqs, self.num_items = seqs, num_items
        self.L, self.T, self.n_neg = length, targets, negatives * targets
        self.every_item = windows == "every-item"
        c = seqs.lengths
        span = length + targets
        if self.every_item:  # one window per training item after the first
            self.per_user = np.maximum(c - 1, 0)
        else:
            self.per_user = np.where(c >= span, c - span + 1, (c > 0).astype(np.int64))
        self.cum = np.cumsum(self.per_user)
        if self.cum[-1] == 0:
            raise ConfigError("no user has a training event: nothing to learn from")
        rows = np.repeat(np.arange(seqs.num_rows, dtype=np.int64), c)
        # Sorted (user, item) keys: membership of a sampled negative is one searchsorted.
        self.seen = np.unique(rows * num_items + seqs.items)
        distinct = np.bincount(self.seen // num_items, minlength=seqs.num_rows)
        if np.any((distinct >= num_items) & (c > 0)):
            raise DataError("a user interacted with every item: no negative can be sampled")
        super().__init__(
            int(self.cum[-1]), batch_size, epochs, seed, shuffle, process_index, process_count
        )

    def windows(self, window_ids: np.ndarray):
        """window ids [N] → (users int64 [N], items int32 [N, L+T], present bool [N, L+T])."""
        users = np.searchsorted(self.cum, window_ids, side="right")
        k = window_ids - (self.cum[users] - self.per_user[users])
        span = self.L + self.T
        c = self.seqs.lengths[users]
        if self.every_item:  # targets from item k + 1 on, cut at the sequence's end
            start = k + 1 - self.L
        else:
            start = np.where(c >= span, k, c - span)  # short rows: negative start = padding
        pos = start[:, None] + np.arange(span)
        present = (pos >= 0) & (pos < c[:, None])
        src = self.seqs.indptr[users][:, None] + np.clip(pos, 0, c[:, None] - 1)
        return users, np.where(present, self.seqs.items[src], 0).astype(np.int32), present

    def sample_negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform items each user never interacted with in training: int32 [N, negatives·T]."""
        out = rng.integers(0, self.num_items, (len(users), self.n_neg))
        users = users[:, None]
        while True:
            keys = users * self.num_items + out
            at = np.minimum(np.searchsorted(self.seen, keys), len(self.seen) - 1)
            bad = self.seen[at] == keys
            if not bad.any():
                return out.astype(np.int32)
            out[bad] = rng.integers(0, self.num_items, int(bad.sum()))

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        epoch, j, window_ids, valid = self.chosen(index)
        users, items, present = self.windows(window_ids)
        rng = np.random.default_rng([self.seed, epoch, j])
        negatives = self.sample_negatives(users, rng)
        present &= valid[:, None]
        L, cols = self.L, self.columns
        batch = {
            "users": np.where(valid, users, 0).astype(np.int32),
            "ids": items[:, :L],
            "mask": present[:, :L],
            "targets": items[:, L:],
            "target_mask": present[:, L:],
            "negatives": np.where(valid[:, None], negatives, 0),
            "valid": valid,
        }
        batch = {k: v[cols] for k, v in batch.items()}
        return {**batch, **self.host_keys(epoch, j)}


class NextItNetRows(_Batches):
    """grain random-access source of NextItNet mini-batches (see the module docstring).

    Each element: users int32 [b], ids int32 [b, M+1] (left-padded, newest last), mask bool
    [b, M+1], valid bool [b], `_epoch`, `_last`; M = max_length.
    """

    def __init__(
        self,
        seqs: Sequences,
        *,
        max_length: int,
        batch_size: int,
        epochs: int,
        seed: int,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        length_buckets: tuple[int, ...] = (),
    ):
        self.seqs, self.width = seqs, max_length + 1
        self.users = np.flatnonzero(seqs.lengths >= 2).astype(np.int32)
        if len(self.users) == 0:
            raise ConfigError("no training sequence has 2 or more items; nothing to learn from")
        bad = [b for b in length_buckets if not 1 <= int(b) < max_length]
        if bad:
            raise ConfigError(
                f"length_buckets {list(length_buckets)}: each must lie in [1, max_length="
                f"{max_length}) (max_length itself is always a bucket); got {bad}"
            )
        # Row widths a mini-batch may take (input length + the last target), ascending.
        self.widths = np.array(sorted({int(b) + 1 for b in length_buckets} | {self.width}))
        self.row_width = np.minimum(seqs.lengths[self.users], self.width)
        super().__init__(
            len(self.users), batch_size, epochs, seed, shuffle, process_index, process_count
        )

    def epoch_order(self, epoch: int) -> np.ndarray:
        order = super().epoch_order(epoch)
        if len(self.widths) == 1:
            return order
        B = self.batch_size
        pools = np.split(order, np.arange(64 * B, len(order), 64 * B))
        order = np.concatenate([p[np.argsort(self.row_width[p], kind="stable")] for p in pools])
        full = len(order) // B  # whole mini-batches are reshuffled; a short last one stays last
        batches = order[: full * B].reshape(full, B)
        if self.shuffle:
            batches = batches[np.random.default_rng([self.seed, epoch, 1]).permutation(full)]
        return np.concatenate([batches.reshape(-1), order[full * B :]])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        epoch, j, rows, valid = self.chosen(index)
        # One width for the whole global batch, so every process builds the same shape.
        longest = self.row_width[rows[valid]].max(initial=0)
        width = int(self.widths[np.searchsorted(self.widths, longest)])
        users = np.where(valid, self.users[rows], 0).astype(np.int32)[self.columns]
        valid = valid[self.columns]
        ids, mask = self.seqs.padded(users, width, left=True)
        mask &= valid[:, None]
        ids = np.where(mask, ids, 0)
        batch = {"users": users, "ids": ids, "mask": mask, "valid": valid}
        return {**batch, **self.host_keys(epoch, j)}


def caser_dataset(seqs: Sequences, **kwargs) -> grain.IterDataset:
    """A checkpointable grain dataset of Caser window mini-batches (see `CaserWindows`)."""
    return grain.MapDataset.source(CaserWindows(seqs, **kwargs)).to_iter_dataset(_OPTIONS)


def nextitnet_dataset(seqs: Sequences, **kwargs) -> grain.IterDataset:
    """A checkpointable grain dataset of NextItNet row mini-batches (see `NextItNetRows`)."""
    return grain.MapDataset.source(NextItNetRows(seqs, **kwargs)).to_iter_dataset(_OPTIONS)
