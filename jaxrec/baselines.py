"""Honest non-neural baselines, as `score_fn`s that `evaluation.evaluate` and `recommend` take.

Shapes: B batch of users, L history length, I items.

Both are fitted on the *stage's input rows*: `split.valid_input` for 'valid' and
`split.test_input` for 'test' (under leave-one-out the latter is train + the validation item).
That is the history every model is allowed to see at that stage and the rows the evaluator
excludes, so a baseline never sees a target and the test numbers use the validation events
exactly as a model refitted on train + valid would.

These score functions run on the host (numpy) and return a jax float32 [B, I] block; they
are not jit-traceable, which is fine: the evaluator calls `score_fn` outside jit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Sequences
from jaxrec.data.splits import Split
from jaxrec.errors import ConfigError


def item_counts(rows: Sequences, num_items: int) -> np.ndarray:
    """How many times each item occurs in `rows` → int64 [I]."""
    return np.bincount(rows.items, minlength=num_items).astype(np.int64)


def popularity(split: Split, stage: str = "test"):
    """Most-popular baseline: every user gets the same item counts as scores.

    Counts come from the stage's input rows (see the module docstring). Equal counts tie and
    are ordered toward the lower item id by `metrics.top_k`.
    Returns score_fn(users [B], hist_ids [B, L], hist_mask [B, L]) -> float32 [B, I].
    """
    inputs, _ = split.stage(stage)
    counts = jnp.asarray(item_counts(inputs, split.num_items), dtype=jnp.float32)

    def score_fn(users, hist_ids, hist_mask) -> jax.Array:
        return jnp.broadcast_to(counts, (len(users), split.num_items))

    return score_fn


def transition_counts(rows: Sequences, num_items: int) -> tuple[Sequences, np.ndarray]:
    """Sparse first-order transition counts as numpy CSR → (next_items, counts).

    Each consecutive pair (a, b) inside a row counts once; pairs never cross rows. Returns
    `(next_items, counts)`: next_items.row(a) are the distinct items seen right after a
    (ascending), and counts.items holds the matching counts (same indptr).
    """
    same_row = np.ones(len(rows.items), dtype=bool)
    same_row[rows.indptr[1:-1] - 1] = False  # the last item of a row has no successor
    same_row[-1:] = False
    src = rows.items[:-1][same_row[:-1]].astype(np.int64)
    dst = rows.items[1:][same_row[:-1]].astype(np.int64)
    keys, counts = np.unique(src * num_items + dst, return_counts=True)
    indptr = np.zeros(num_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // num_items, minlength=num_items), out=indptr[1:])
    next_items = Sequences(indptr, (keys % num_items).astype(np.int32))
    return next_items, counts.astype(np.int64)


@functools.partial(jax.jit, static_argnames=("batch",))
def _dense_scores(base, rows, items, values, *, batch):
    """base float32 [I] broadcast to [B, I] plus `values` scattered at (rows, items)."""
    scores = jnp.broadcast_to(base, (batch, base.shape[0]))
    return scores.at[rows, items].add(values, mode="drop")


def markov_chain(split: Split, stage: str = "test"):
    """First-order Markov chain: score = count(last item → item) + popularity tie-break.

    Transitions are counted over consecutive pairs of the stage's input rows and kept sparse
    on the host (numpy CSR); each call builds a dense [B, I] block for its chunk only, on the
    device from the chunk's sparse entries (no [B, I] host array, no [B, I] transfer). The
    user's last item is the newest present entry of `hist_ids` (so the same function serves
    `recommend` on any history). The score is `count + pop / (max_pop + 1)`: the popularity
    term is < 1, so ranking is by transition count first and popularity second; users whose
    last item has no outgoing transition (or an empty history) get pure popularity. This is
    exact while count * (max_pop + 1) stays below 2**23 (float32), i.e. on any data set here.
    Returns score_fn(users [B], hist_ids [B, L], hist_mask [B, L]) -> float32 [B, I].
    """
    inputs, _ = split.stage(stage)
    num_items = split.num_items
    pop = item_counts(inputs, num_items)
    tie_break_device = jnp.asarray(pop / (pop.max() + 1.0), dtype=jnp.float32)
    next_items, counts = transition_counts(inputs, num_items)

    def score_fn(users, hist_ids, hist_mask) -> jax.Array:
        hist_ids, hist_mask = np.asarray(hist_ids), np.asarray(hist_mask)
        batch, length = hist_mask.shape
        has_history = hist_mask.any(axis=1)
        # Index of the newest present entry, whatever the padding side.
        newest = length - 1 - np.argmax(hist_mask[:, ::-1], axis=1)
        last = hist_ids[np.arange(batch), newest]
        rows = np.flatnonzero(has_history)
        starts, ends = next_items.indptr[last[rows]], next_items.indptr[last[rows] + 1]
        lengths = ends - starts
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        # Only the sparse (row, item, count) entries cross to the device, padded to a power
        # of two so the dense build compiles a handful of times; the [B, I] block is made there.
        nnz = int(lengths.sum())
        size = 1 << max(nnz - 1, 0).bit_length()
        entry_rows = np.full(size, batch, dtype=np.int32)  # row `batch` is out of range: dropped
        entry_items = np.zeros(size, dtype=np.int32)
        entry_counts = np.zeros(size, dtype=np.float32)
        entry_rows[:nnz] = np.repeat(rows, lengths)
        entry_items[:nnz] = next_items.items[flat]
        entry_counts[:nnz] = counts[flat]
        return _dense_scores(tie_break_device, entry_rows, entry_items, entry_counts, batch=batch)

    return score_fn


def ease(split: Split, stage: str = "test", l2: float = 500.0):
    """EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

    Closed form: with G = XᵀX + λI and P = G⁻¹, B = I - P · diag(1 / diag(P)) (so diag(B) = 0).
    X [U, I] is binary and holds the training rows plus the stage's input rows (for
    held-out users these are their fold-in items; never a target). G is accumulated in
    float64 from dense blocks of 4096 users, so no [U, I] array is ever whole; G and B are
    [I, I] (fine for catalogues up to a few tens of thousands of items).
    Scores = x_u · B with x_u the multi-hot of the history passed in (hist_ids, hist_mask),
    built on the device. Returns score_fn(users [B], hist_ids [B, L], hist_mask [B, L]) ->
    float32 [B, I].
    """
    if l2 <= 0:
        raise ConfigError(f"eval.ease_l2={l2} must be positive (EASE's lambda, e.g. 500)")
    inputs, _ = split.stage(stage)
    num_items = split.num_items
    gram = np.zeros((num_items, num_items))
    for start in range(0, split.num_users, 4096):
        end = min(start + 4096, split.num_users)
        x = np.zeros((end - start, num_items))
        for part in (split.train, inputs):
            r = np.repeat(np.arange(end - start), part.lengths[start:end])
            x[r, part.items[part.indptr[start] : part.indptr[end]]] = 1.0
        gram += x.T @ x
    gram[np.diag_indices(num_items)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices(num_items)] = 0.0
    weights = jnp.asarray(b, dtype=jnp.float32)
    return functools.partial(_ease_scores, weights)


@jax.jit
def _ease_scores(weights, users, hist_ids, hist_mask):
    del users
    rows = jnp.arange(hist_ids.shape[0])[:, None]
    x = jnp.zeros((hist_ids.shape[0], weights.shape[0]), jnp.float32)
    x = x.at[rows, hist_ids].max(jnp.asarray(hist_mask, jnp.float32))
    return x @ weights
