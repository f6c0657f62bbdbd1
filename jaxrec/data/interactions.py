"""`Interactions` (users × items event log with raw↔dense id maps) and `Sequences` (CSR rows).

Dense ids are 0-based and contiguous: users `0..U-1`, items `0..I-1`. Raw ids are kept as
strings in `user_vocab` / `item_vocab` (index = dense id), sorted numerically when every raw
id is an integer and lexicographically otherwise, so a dense id never depends on file order.
These vocabularies are saved with checkpoints and exports. Filters (`filter_rating`,
`filter_k_core`) return new `Interactions`; `describe` gives the summary of `jaxrec data stats`.
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
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        width = max(max_len, 0)
        end = self.indptr[rows + 1]
        n = np.minimum(end - self.indptr[rows], width)  # the newest n items of each row
        col = np.arange(width)[None, :]
        mask = col >= (width - n)[:, None] if left else col < n[:, None]
        # Their positions in `items`, row after row, oldest first: the order in which a
        # boolean assignment fills the mask's True cells (no Python loop over rows). The
        # k-th kept item overall, in row r, sits at k + end[r] - (items kept in rows ≤ r).
        ids = np.zeros((len(rows), width), dtype=np.int32)
        ids[mask] = self.items[np.arange(int(n.sum())) + np.repeat(end - np.cumsum(n), n)]
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
        users, items = np.asarray(users), np.asarray(items)
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
    small = raw.dtype.kind == "i" or (raw.dtype.kind == "u" and raw.max() < 2**63)
    if small:  # the same vocab and ids as via strings (numeric order), without string sorts
        vocab, dense = np.unique(raw, return_inverse=True)
        return vocab.astype(str), dense.astype(np.int32)
    raw = raw.astype(str)
    vocab = _natural_sort(np.unique(raw))
    index = np.argsort(vocab, kind="stable")
    dense = index[np.searchsorted(vocab[index], raw)]
    return vocab, dense.astype(np.int32)


def filter_rating(data: Interactions, min_rating: float) -> Interactions:
    """Keep the events with rating >= min_rating (explicit → implicit feedback, e.g. ≥ 4)."""
    if data.ratings is None:
        raise DataError(
            "this data has no ratings, so it cannot be filtered by rating; drop the threshold",
            path=data.source,
            field="rating",
        )
    keep = data.ratings >= min_rating
    if not keep.any():
        msg = f"no event has rating >= {min_rating} (ratings span {data.ratings.min():g}.."
        raise DataError(f"{msg}{data.ratings.max():g}); lower the threshold", path=data.source)
    return data if keep.all() else data.select(keep)


def filter_k_core(
    data: Interactions, min_user: int = 0, min_item: int = 0, iterative: bool = True
) -> Interactions:
    """Drop users with < min_user events and items with < min_item events.

    iterative=True repeats until stable, so every kept user and item meets its minimum (the
    usual "k-core"). iterative=False is one pass with counts taken from the input, as SASRec's
    DataProcessing.py does; kept users may then fall below min_user.
    """
    keep = np.ones(data.num_events, dtype=bool)
    while True:
        users, items = data.user_ids[keep], data.item_ids[keep]
        ucount = np.bincount(users, minlength=data.num_users)
        icount = np.bincount(items, minlength=data.num_items)
        ok = (ucount[data.user_ids] >= min_user) & (icount[data.item_ids] >= min_item)
        changed = (keep & ~ok).any()
        keep &= ok
        if not (iterative and changed):
            break
    if not keep.any():
        raise DataError(
            f"the k-core filter (min_user={min_user}, min_item={min_item}) removed every event; "
            "lower the minimums",
            path=data.source,
        )
    return data if keep.all() else data.select(keep)


def describe(data: Interactions) -> dict:
    """Summary statistics (plain Python values, JSON-ready) for `jaxrec data stats`.

    Keys: source, users, items, events, density (events / (users · items)), repeated_pairs
    (events minus distinct (user, item) pairs), sequence_length {min, mean, median, max} over
    users, ratings (value → count, or ten equal-width bins past 20 distinct values; None
    without ratings), timestamps {min, max} (None without timestamps).
    """
    lengths = np.bincount(data.user_ids, minlength=data.num_users)
    pairs = data.user_ids.astype(np.int64) * data.num_items + data.item_ids
    out = {
        "source": data.source,
        "users": data.num_users,
        "items": data.num_items,
        "events": data.num_events,
        "density": data.num_events / (data.num_users * data.num_items),
        "repeated_pairs": int(data.num_events - len(np.unique(pairs))),
        "sequence_length": {
            "min": int(lengths.min()),
            "mean": float(lengths.mean()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "ratings": None,
        "timestamps": None,
    }
    if data.ratings is not None:
        values, counts = np.unique(data.ratings, return_counts=True)
        if len(values) > 20:  # continuous scores: ten equal-width bins instead of every value
            counts, edges = np.histogram(data.ratings, bins=10)
            values = [f"[{a:g}, {b:g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
            values[-1] = values[-1][:-1] + "]"  # numpy's last bin includes its right edge
        else:
            values = [f"{v:g}" for v in values]
        out["ratings"] = dict(zip(values, map(int, counts), strict=True))
    if data.timestamps is not None:
        out["timestamps"] = {
            "min": float(data.timestamps.min()),
            "max": float(data.timestamps.max()),
        }
    return out


def remap(data: Interactions, user_vocab: np.ndarray, item_vocab: np.ndarray):
    """The events of `data` over other vocabularies (a workdir's saved ones) → (Interactions,
    what did not map).

    Dense ids come from looking up each raw id in `user_vocab` / `item_vocab`, never from
    renumbering, so a model trained over those vocabularies reads the same id for the same
    raw id. Events whose user or item is not in them are dropped. The report holds
    `unknown_users`, `unknown_items` (raw ids of `data` not in the vocabularies, up to 5 of
    each as examples), `dropped_events`, and `absent_users` / `absent_items` (vocabulary
    entries with no event left). None when the vocabularies are `data`'s own.
    """
    user_vocab, item_vocab = np.asarray(user_vocab).astype(str), np.asarray(item_vocab).astype(str)
    if np.array_equal(data.user_vocab, user_vocab) and np.array_equal(data.item_vocab, item_vocab):
        return data, None
    user_map, item_map = (
        lookup_ids(user_vocab, data.user_vocab),
        lookup_ids(item_vocab, data.item_vocab),
    )
    users, items = user_map[data.user_ids], item_map[data.item_ids]
    keep = (users >= 0) & (items >= 0)
    order = np.argsort(users[keep], kind="stable")  # chronological order inside a user kept
    out = Interactions(
        user_ids=users[keep][order],
        item_ids=items[keep][order],
        timestamps=None if data.timestamps is None else data.timestamps[keep][order],
        ratings=None if data.ratings is None else data.ratings[keep][order],
        user_vocab=user_vocab,
        item_vocab=item_vocab,
        source=data.source,
    )
    report = {
        "unknown_users": int((user_map < 0).sum()),
        "unknown_items": int((item_map < 0).sum()),
        "unknown_user_examples": data.user_vocab[user_map < 0][:5].tolist(),
        "unknown_item_examples": data.item_vocab[item_map < 0][:5].tolist(),
        "dropped_events": int((~keep).sum()),
        "absent_users": int(len(user_vocab) - len(np.unique(out.user_ids))),
        "absent_items": int(len(item_vocab) - len(np.unique(out.item_ids))),
    }
    return out, report


def lookup_ids(vocab: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Dense id in `vocab` of each raw id, -1 where it is not there → int32 [len(raw)]."""
    if len(vocab) == 0:
        return np.full(len(raw), -1, np.int32)
    index = np.argsort(vocab, kind="stable")
    pos = np.minimum(np.searchsorted(vocab[index], raw), len(vocab) - 1)
    found = vocab[index][pos] == raw
    return np.where(found, index[pos], -1).astype(np.int32)


def describe_remap(report: dict) -> str:
    """One sentence on what `remap` could not map (for warnings)."""
    parts = []
    for kind in ("user", "item"):
        n = report[f"unknown_{kind}s"]
        if n:
            examples = ", ".join(map(repr, report[f"unknown_{kind}_examples"]))
            parts.append(f"{n} {kind}s unknown to the workdir (e.g. {examples})")
    parts.append(f"{report['dropped_events']} events skipped")
    for kind in ("user", "item"):
        if report[f"absent_{kind}s"]:
            parts.append(f"{report[f'absent_{kind}s']} known {kind}s have no events now")
    return "; ".join(parts)
