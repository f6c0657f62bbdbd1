"""`Interactions` (users × items event log with raw↔dense id maps) and `Sequences` (CSR rows).

Dense ids are 0-based and contiguous: users `0..U-1`, items `0..I-1`. Raw ids are kept as
strings in `user_vocab` / `item_vocab` (index = dense id), sorted numerically when every raw
id is an integer and lexicographically otherwise, so a dense id never depends on file order.
These vocabularies are saved with checkpoints and exports.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrec.errors import DataError


@dataclasses.dataclass(frozen=True)
class Sequences:
    """Variable-length rows in CSR form, one row per user (chronological for sequences).

    indptr: int64 [U+1]; items: int32 [nnz]. Row u is `items[indptr[u]:indptr[u+1]]`.
    """

    indptr: np.ndarray
    items: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, u: int) -> np.ndarray:
        return self.items[self.indptr[u] : self.indptr[u + 1]]

    @classmethod
    def from_rows(cls, rows: list[np.ndarray] | list[list[int]]) -> Sequences:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        items = (
            np.concatenate([np.asarray(r, dtype=np.int32) for r in rows])
            if len(rows) and indptr[-1] > 0
            else np.zeros(0, dtype=np.int32)
        )
        return cls(indptr, items.astype(np.int32))

    def concat(self, other: Sequences) -> Sequences:
        """Row-wise concatenation: row u becomes `self.row(u) ++ other.row(u)`."""
        if self.num_rows != other.num_rows:
            raise ValueError(f"row counts differ: {self.num_rows} vs {other.num_rows}")
        return Sequences.from_rows(
            [np.concatenate([self.row(u), other.row(u)]) for u in range(self.num_rows)]
        )

    def padded(self, rows: np.ndarray, max_len: int, *, left: bool = True):
        """The last `max_len` items of each selected row, padded with 0 → (ids, mask).

        ids: int32 [len(rows), max_len]; mask: bool, True where an item is present.
        Left padding (default) puts the newest item in the last column.
        """
        ids = np.zeros((len(rows), max_len), dtype=np.int32)
        mask = np.zeros((len(rows), max_len), dtype=bool)
        for j, u in enumerate(rows):
            r = self.row(int(u))[-max_len:] if max_len > 0 else self.row(int(u))[:0]
            if left:
                ids[j, max_len - len(r) :], mask[j, max_len - len(r) :] = r, True
            else:
                ids[j, : len(r)], mask[j, : len(r)] = r, True
        return ids, mask


@dataclasses.dataclass(frozen=True)
class Interactions:
    """An event log over dense ids, sorted by (user, timestamp, original file order).

    user_ids, item_ids: int32 [N]; timestamps: float64 [N] or None; ratings: float32 [N] or None.
    user_vocab: str [U]; item_vocab: str [I] (raw ids; index = dense id).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None
    ratings: np.ndarray | None
    user_vocab: np.ndarray
    item_vocab: np.ndarray
    source: str = "<memory>"

    @property
    def num_users(self) -> int:
        return len(self.user_vocab)

    @property
    def num_items(self) -> int:
        return len(self.item_vocab)

    @property
    def num_events(self) -> int:
        return len(self.item_ids)

    def sequences(self) -> Sequences:
        """Each user's items in chronological order, as CSR rows."""
        counts = np.bincount(self.user_ids, minlength=self.num_users)
        indptr = np.zeros(self.num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Sequences(indptr, self.item_ids.astype(np.int32))

    @classmethod
    def from_raw(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        timestamps: np.ndarray | None = None,
        ratings: np.ndarray | None = None,
        *,
        source: str = "<memory>",
    ) -> Interactions:
        """Build from raw ids (any type, compared as strings), keeping file order among ties."""
        users = np.asarray(users).astype(str)
        items = np.asarray(items).astype(str)
        if len(users) == 0:
            raise DataError("no interactions: the file holds no events", path=source)
        user_vocab, user_ids = _dense_ids(users)
        item_vocab, item_ids = _dense_ids(items)
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        keys = (user_ids,) if ts is None else (ts, user_ids)
        order = np.lexsort(keys)  # stable: equal keys keep file order
        return cls(
            user_ids=user_ids[order],
            item_ids=item_ids[order],
            timestamps=None if ts is None else ts[order],
            ratings=None if ratings is None else np.asarray(ratings, np.float32)[order],
            user_vocab=user_vocab,
            item_vocab=item_vocab,
            source=source,
        )

    def select(self, keep: np.ndarray) -> Interactions:
        """Keep the events where `keep` is True and re-index users and items densely."""
        return Interactions.from_raw(
            self.user_vocab[self.user_ids[keep]],
            self.item_vocab[self.item_ids[keep]],
            None if self.timestamps is None else self.timestamps[keep],
            None if self.ratings is None else self.ratings[keep],
            source=self.source,
        )


def _natural_sort(vocab: np.ndarray) -> np.ndarray:
    try:
        return vocab[np.argsort(vocab.astype(np.int64), kind="stable")]
    except (ValueError, OverflowError):
        return np.sort(vocab)


def _dense_ids(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vocab = _natural_sort(np.unique(raw))
    index = np.argsort(vocab, kind="stable")
    dense = index[np.searchsorted(vocab[index], raw)]
    return vocab, dense.astype(np.int32)
