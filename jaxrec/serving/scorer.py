"""Load and call a compiled scorer artifact (`jaxrec export`) with jax and numpy only.

    scorer = jaxrec.serving.scorer.load_scorer("artifacts/gru4rec")
    item_ids, scores = scorer.recommend([["i12", "i7"], ["i3"]], k=10)

This module imports nothing of jaxrec's training code (no models, tasks, flax or optax), so
a service installs jax and this file's package and nothing else. Every part of the artifact
is checked against the sha256 in its metadata before anything is deserialized: the
serialized modules are code. Requests are padded to a few batch-size buckets (powers of
two) and exclusion lists to power-of-two widths, so a service compiles a handful of shapes,
not one per request.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from jax import export

from jaxrec.errors import JaxrecError

FORMAT_VERSION = 1
_PARTS = ("recommend.jax", "score.jax", "params.npz", "items.npy", "users.npy")


class ScorerError(JaxrecError):
    """The artifact is missing, damaged, or from an incompatible version."""


class UnknownIdError(JaxrecError, KeyError):
    """A request named raw ids the model was not trained on."""

    def __init__(self, kind: str, ids: list):
        self.ids = ids
        shown = ", ".join(map(repr, ids[:10])) + (" …" if len(ids) > 10 else "")
        super().__init__(
            f"{len(ids)} unknown {kind} id(s): {shown}; pass unknown='skip' to ignore them"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def _bucket(n: int, minimum: int = 1) -> int:
    return max(minimum, 1 << max(n - 1, 0).bit_length())


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


class Scorer:
    """A loaded artifact. `metadata` holds what the exporter recorded (model, K, versions)."""

    def __init__(self, path: Path, metadata: dict):
        self.path, self.metadata = path, metadata
        self.history_length = int(metadata["history_length"])
        self.max_k = int(metadata["max_k"])
        self.uses_user_ids = bool(metadata["uses_user_ids"])
        self.item_vocab = np.load(path / "items.npy", allow_pickle=False)
        self.user_vocab = np.load(path / "users.npy", allow_pickle=False)
        self._item_index = {v: i for i, v in enumerate(self.item_vocab.tolist())}
        self._user_index = {v: i for i, v in enumerate(self.user_vocab.tolist())}
        with np.load(path / "params.npz", allow_pickle=False) as z:
            self.params = jax.device_put(_unflatten({k: z[k] for k in z.files}))
        self._recommend = jax.jit(_deserialize(path / "recommend.jax").call)
        self._score = jax.jit(_deserialize(path / "score.jax").call)

    def _dense(self, ids, index: dict, kind: str, unknown: str) -> tuple[list[int], list]:
        dense, missing = [], []
        for raw in ids:
            i = index.get(str(raw))
            if i is None:
                missing.append(raw)
            else:
                dense.append(i)
        if missing and unknown == "error":
            raise UnknownIdError(kind, missing)
        return dense, missing

    def _batch(self, inputs, users, exclude, exclude_seen: bool, unknown: str):
        """Requests → (n, users [b], hist ids/mask [b, L], exclude ids/mask [b, E]), the
        batch padded to its bucket b, dense ids."""
        users = self._checked(inputs, users, exclude, unknown)
        rows, skipped = [], []
        for r in range(len(inputs)):
            row, missing = self._row(inputs[r], users[r], exclude[r] if exclude else [], unknown)
            hist, extra = row[1], row[2]
            rows.append((row[0], hist, (hist if exclude_seen else []) + extra))
            skipped += missing
        if skipped:
            warnings.warn(f"skipped {len(skipped)} unknown id(s): {skipped[:10]}", stacklevel=3)
        return len(inputs), *self._arrays(rows)

    def _checked(self, inputs, users, exclude, unknown: str) -> list:
        """Validate a call's arguments → one raw user id (or None) per request."""
        if unknown not in ("error", "skip"):
            raise ValueError(f"unknown must be 'error' or 'skip', got {unknown!r}")
        _check_requests(inputs, "inputs")
        if exclude is not None:
            _check_requests(exclude, "exclude")
        n = len(inputs)
        if users is None:
            if self.uses_user_ids:
                raise JaxrecError(
                    f"model {self.metadata['model']!r} scores with a user embedding: "
                    "pass users=[raw user id per request]"
                )
            users = [None] * n
        if len(users) != n or (exclude is not None and len(exclude) != n):
            raise ValueError("inputs, users and exclude must have one entry per request")
        return users

    def _row(self, inputs, user, exclude, unknown: str) -> tuple[tuple, list]:
        """One request in dense ids → ((user, history, extra exclusions), unknown ids)."""
        hist, miss = self._dense(inputs, self._item_index, "item", unknown)
        extra, miss2 = self._dense(exclude, self._item_index, "item", unknown)
        dense_user = 0
        if user is not None:
            found, miss3 = self._dense([user], self._user_index, "user", unknown)
            dense_user = found[0] if found else 0
            miss += miss3
        return (dense_user, hist, extra), miss + miss2

    def _arrays(self, rows: list[tuple]) -> tuple:
        """(user, history, exclusions) rows → arrays padded to the batch's bucket."""
        n, L = len(rows), self.history_length
        b = _bucket(n)
        e = _bucket(max((len(x) for _, _, x in rows), default=1), 8)
        users_a = np.zeros(b, np.int32)
        hist_ids, hist_mask = np.zeros((b, L), np.int32), np.zeros((b, L), bool)
        ex_ids, ex_mask = np.zeros((b, e), np.int32), np.zeros((b, e), bool)
        for r, (user, hist, excl) in enumerate(rows):
            users_a[r] = user
            h = hist[-L:]
            if h:  # left-padded: the newest item in the last column
                hist_ids[r, L - len(h) :], hist_mask[r, L - len(h) :] = h, True
            ex_ids[r, : len(excl)], ex_mask[r, : len(excl)] = excl, True
        return users_a, hist_ids, hist_mask, ex_ids, ex_mask

    def recommend(
        self,
        inputs: Sequence[Sequence],
        k: int | None = None,
        exclude: Sequence[Sequence] | None = None,
        *,
        users: Sequence | None = None,
        exclude_seen: bool = True,
        unknown: str = "error",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k raw item ids and scores per request → (ids [n, k] str, scores [n, k] float32).

        inputs: one list of raw item ids per request (a recent history, oldest first, for
        sequential models; an item set for autoencoders and GANs); only the last
        `history_length` are read. exclude: extra raw ids per request never to recommend;
        the inputs are excluded too unless exclude_seen=False. users: raw user ids, needed
        when `uses_user_ids`. unknown='error' raises UnknownIdError naming unknown ids;
        'skip' drops them with a warning. Slots with no candidate left hold '' and -inf.
        """
        k = int(self.metadata["default_k"] if k is None else k)
        if not 0 < k <= self.max_k:
            raise ValueError(f"k must be in 1..{self.max_k} (the artifact's max_k), got {k}")
        if len(inputs) == 0:
            return np.zeros((0, k), self.item_vocab.dtype), np.zeros((0, k), np.float32)
        n, *arrays = self._batch(inputs, users, exclude, exclude_seen, unknown)
        ids, scores = jax.device_get(self._recommend(self.params, *arrays))
        ids, scores = ids[:n, :k], scores[:n, :k]
        raw = np.where(ids >= 0, self.item_vocab[np.maximum(ids, 0)], "")
        return raw, scores.astype(np.float32)

    def score(self, inputs, *, users=None, unknown: str = "error") -> np.ndarray:
        """Scores of every catalogue item per request, float32 [n, I] (no exclusion);
        column i is item `item_vocab[i]`."""
        n, users_a, hist_ids, hist_mask, _, _ = self._batch(inputs, users, None, False, unknown)
        return np.asarray(self._score(self.params, users_a, hist_ids, hist_mask))[:n]


_ID_TYPES = (str, int, np.integer, np.str_)


def _check_requests(rows, name: str) -> None:
    """`rows` must be a rank-2 list: one list of raw ids (str or int) per request."""
    if isinstance(rows, str | bytes) or not isinstance(rows, Sequence | np.ndarray):
        raise ScorerError(
            f"{name} must be a list of raw-id lists, one per request; got {type(rows).__name__}"
        )
    for r, row in enumerate(rows):
        if isinstance(row, str | bytes) or not isinstance(row, Sequence | np.ndarray):
            raise ScorerError(
                f"{name}[{r}] must be a list of raw ids (one request); got {type(row).__name__}"
            )
        for j, raw in enumerate(row):
            if not isinstance(raw, _ID_TYPES) or isinstance(raw, bool):
                raise ScorerError(
                    f"{name}[{r}][{j}] is a {type(raw).__name__}; raw ids are strings or integers"
                )


def _deserialize(path: Path):
    try:
        return export.deserialize(bytearray(path.read_bytes()))
    except Exception as e:  # noqa: BLE001 — any failure here means an unusable artifact
        raise ScorerError(
            f"{path}: cannot deserialize ({type(e).__name__}: {e}); it may come from an "
            f"incompatible jax (this process has jax {jax.__version__}): re-export it"
        ) from None


def verify(path: str | Path) -> dict:
    """Check that every part of the artifact at `path` exists and matches its sha256 →
    metadata."""
    path = Path(path)
    meta_path = path / "metadata.json"
    try:
        metadata = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ScorerError(f"{path}: not a jaxrec scorer (no metadata.json)") from None
    except (OSError, ValueError) as e:
        raise ScorerError(f"{meta_path}: unreadable metadata: {e}") from None
    cc = metadata.get("calling_convention_version")
    lo = export.minimum_supported_calling_convention_version
    hi = export.maximum_supported_calling_convention_version
    if not isinstance(cc, int) or not lo <= cc <= hi:
        raise ScorerError(
            f"{meta_path}: exported with jax {metadata.get('jax_version')} (calling convention "
            f"{cc!r}); this jax {jax.__version__} reads conventions {lo}..{hi}: re-export it "
            "with this jax, or load it with the jax it was made with"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ScorerError(
            f"{meta_path}: artifact format {metadata.get('format_version')!r}, this jaxrec "
            f"reads format {FORMAT_VERSION}: re-export it"
        )
    sums = metadata.get("sha256", {})
    for part in _PARTS:
        file = path / part
        if not file.exists():
            raise ScorerError(f"{file}: missing part of the artifact")
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if sums.get(part) != digest:
            raise ScorerError(f"{file}: sha256 mismatch: the artifact is damaged or was modified")
    return metadata


def load_scorer(path: str | Path) -> Scorer:
    """Verify and load the artifact at `path` (see `jaxrec.serving.export`)."""
    path = Path(path)
    return Scorer(path, verify(path))


def exported_score(path: str | Path):
    """The raw `score.jax` function: (params, users, hist_ids, hist_mask) → [B, I] (tests)."""
    verify(path)
    return _deserialize(Path(path) / "score.jax").call
