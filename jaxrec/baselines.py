"""Honest non-neural baselines, as `score_fn`s that `evaluation.evaluate` and `recommend` take.

Shapes: B batch of users, L history length, I items.

Popularity, a first-order Markov chain and EASE. Popularity and Markov are fitted on the
*stage's input rows*: `split.valid_input` for 'valid' and `split.test_input` for 'test'
(under leave-one-out the latter is train + the validation item). That is the history every
model is allowed to see at that stage and the rows the evaluator excludes, so a baseline
never sees a target and the test numbers use the validation events exactly as a model
refitted on train + valid would. EASE adds the training rows (see `ease_weights`).

These score functions prepare their input on the host (numpy) and return a jax float32
[B, I] block; they are not jit-traceable, which is fine: the evaluator calls `score_fn`
outside jit. EASE's [I, I] matrices are built and inverted on the default device in
float32; `ease_weights` raises `BaselineTooLarge` first when they would not fit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Sequences
from jaxrec.data.splits import Split
from jaxrec.errors import ConfigError, JaxrecError


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


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The aranges [starts[k], starts[k] + lengths[k]) end to end → int64 [sum(lengths)]."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


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
        flat = _ranges(starts, lengths)
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


class BaselineTooLarge(JaxrecError):
    """A baseline's fitted matrices would not fit in the memory free for them."""


def available_bytes() -> int | None:
    """Bytes free for new arrays on the default device, or None where that is unknown.

    An accelerator reports its own limit (`bytes_limit - bytes_in_use`); on CPU the arrays
    live in host memory, so this reads `MemAvailable` from /proc/meminfo (Linux only).
    """
    stats = jax.devices()[0].memory_stats()
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(name: str, num_items: int, arrays: int) -> None:
    """Raise BaselineTooLarge unless `arrays` float32 [I, I] matrices fit in free memory.

    Needs `arrays · I² · 4` bytes; skipped where `available_bytes()` cannot tell.
    """
    needed = arrays * num_items**2 * 4
    free = available_bytes()
    if free is not None and needed > free:
        raise BaselineTooLarge(
            f"{name} needs {needed / 2**30:.1f} GiB for {arrays} float32 "
            f"{num_items}x{num_items} matrices ({num_items} items) but "
            f"{free / 2**30:.1f} GiB is available: drop '{name}' from eval.baselines "
            f"(or run on a machine with more memory)"
        )


def item_sets(*parts: Sequences, num_items: int) -> Sequences:
    """Row u's distinct items over all `parts` (the union of part.row(u)), ascending → CSR.

    These are the rows of EASE's binary X [U, I]: repeats and items present in several
    parts count once.
    """
    num_rows = parts[0].num_rows
    users = np.concatenate([np.repeat(np.arange(num_rows), part.lengths) for part in parts])
    items = np.concatenate([part.items for part in parts]).astype(np.int64)
    keys = np.unique(users * num_items + items)
    indptr = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // num_items, minlength=num_rows), out=indptr[1:])
    return Sequences(indptr, (keys % num_items).astype(np.int32))


# A row of n items costs n² scattered adds as pairs against 2·I² flops in a dense block;
# with a scattered add about 5,000 times dearer than a matmul flop on CPU they break even
# near n = 0.02·I, so denser rows go through the matmul.
_DENSE_ROW_SHARE = 0.02
_BLOCK_FLOATS = 1 << 24  # a dense block [block, I] and a row panel [panel, I]: 64 MiB each
_PAIR_BUDGET = 1 << 22  # item pairs per scatter; its index arrays take about 300 MiB at most


def _pow2(n: int) -> int:
    """The smallest power of two ≥ n (≥ 1): padded sizes, so few shapes compile."""
    return 1 << max(n - 1, 0).bit_length()


def _padded(values: np.ndarray, size: int, fill: int) -> np.ndarray:
    """int32 [size]: `values` then `fill` (an out-of-range index that scatters drop)."""
    out = np.full(size, fill, dtype=np.int32)
    out[: len(values)] = values
    return out


@functools.partial(jax.jit, donate_argnums=0, static_argnames=("block",))
def _add_block(gram, rows, cols, *, block):
    """gram [I, I] + xᵀx, x the binary [block, I] with ones at (rows, cols).

    One [panel, I] row panel per loop step, added in place: a whole xᵀx would be a second
    [I, I] array (and unrolled panels were all computed before any was added). The last
    panel is shifted back to fit and masks the rows an earlier panel already added.
    """
    num_items = gram.shape[0]
    x = jnp.zeros((block, num_items), gram.dtype).at[rows, cols].set(1.0, mode="drop")
    panel = min(num_items, max(1, _BLOCK_FLOATS // num_items))

    def add_panel(k, gram):
        start = jnp.minimum(k * panel, num_items - panel)
        product = jax.lax.dynamic_slice_in_dim(x, start, panel, axis=1).T @ x  # [panel, I]
        fresh = start + jnp.arange(panel) >= k * panel
        current = jax.lax.dynamic_slice_in_dim(gram, start, panel, axis=0)
        update = jnp.where(fresh[:, None], current + product, current)
        return jax.lax.dynamic_update_slice_in_dim(gram, update, start, axis=0)

    return jax.lax.fori_loop(0, -(-num_items // panel), add_panel, gram)


@functools.partial(jax.jit, donate_argnums=0)
def _add_pairs(gram, left, right):
    """gram [I, I] with 1 added at every (left[k], right[k])."""
    return gram.at[left, right].add(1.0, mode="drop")


def _add_dense_rows(gram: jax.Array, sets: Sequences, users: np.ndarray) -> jax.Array:
    """Add xᵀx for `users`' rows, a dense [block, I] float32 block at a time."""
    num_items = gram.shape[0]
    block = min(_pow2(len(users)), max(1, _BLOCK_FLOATS // num_items))
    for start in range(0, len(users), block):
        chunk = users[start : start + block]
        lengths = sets.lengths[chunk]
        nnz = _pow2(int(lengths.sum()))
        rows = _padded(np.repeat(np.arange(len(chunk)), lengths), nnz, block)
        cols = _padded(sets.items[_ranges(sets.indptr[chunk], lengths)], nnz, 0)
        gram = _add_block(gram, rows, cols, block=block)
    return gram


def _item_pairs(sets: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (i, j) of items in one row of `users`, (i, i) included."""
    starts, lengths = sets.indptr[users], sets.lengths[users]
    entries = _ranges(starts, lengths)
    reps = np.repeat(lengths, lengths)  # each entry pairs with its whole row
    left = np.repeat(sets.items[entries], reps)
    right = sets.items[_ranges(np.repeat(starts, lengths), reps)]
    return left, right


def _add_sparse_rows(gram: jax.Array, sets: Sequences, users: np.ndarray) -> jax.Array:
    """Add xᵀx for `users`' rows as scattered item pairs, about _PAIR_BUDGET per call."""
    if not len(users):
        return gram
    num_items = gram.shape[0]
    cost = np.cumsum(sets.lengths[users] ** 2)
    # Cuts where the running pair count crosses a multiple of the budget: a chunk holds
    # fewer than 2 budgets of pairs unless one row alone has more.
    cuts = np.searchsorted(cost, np.arange(_PAIR_BUDGET, cost[-1], _PAIR_BUDGET), "right")
    for chunk in np.split(users, np.unique(cuts)):
        if len(chunk):
            left, right = _item_pairs(sets, chunk)
            size = _pow2(len(left))
            gram = _add_pairs(gram, _padded(left, size, num_items), _padded(right, size, 0))
    return gram


def cooccurrence(sets: Sequences, num_items: int) -> jax.Array:
    """XᵀX as float32 [I, I] on the default device, X [U, I] the binary rows `sets`.

    Never builds X whole and never calls numpy's BLAS (whose multithreaded float64 xᵀx
    crashed at 26,000 items and beyond). Dense rows (> _DENSE_ROW_SHARE · I items) go
    through [block, I] matmuls, the rest through scattered item pairs. Counts are exact in
    float32 while no pair co-occurs in 2**24 rows or more.
    """
    gram = jnp.zeros((num_items, num_items), jnp.float32)
    lengths = sets.lengths
    dense = lengths > _DENSE_ROW_SHARE * num_items
    gram = _add_dense_rows(gram, sets, np.flatnonzero(dense))
    return _add_sparse_rows(gram, sets, np.flatnonzero(~dense & (lengths > 0)))


@functools.partial(jax.jit, donate_argnums=0)
def _ease_solve(gram, l2):
    """EASE's B float32 [I, I] from XᵀX [I, I]; gram is donated, so P and B reuse its buffer."""
    diag = jnp.diag_indices(gram.shape[0])
    p = jnp.linalg.inv(gram.at[diag].add(l2))
    return (p / -jnp.diag(p)[None, :]).at[diag].set(0.0)


# Live float32 [I, I] arrays at the peak of `ease_weights`: XᵀX (whose buffer the LU
# factors and then B take over) and the identity that becomes P; building XᵀX in panels
# stays below that.
_EASE_ARRAYS = 2


def ease_weights(split: Split, stage: str = "test", l2: float = 500.0) -> jax.Array:
    """EASE's item-item weights B float32 [I, I] (Steck, WWW 2019), on the default device.

    Closed form: with G = XᵀX + λI and P = G⁻¹, B = I - P · diag(1 / diag(P)) (so
    diag(B) = 0). X [U, I] is binary and holds the training rows plus the stage's input
    rows (for held-out users these are their fold-in items; never a target). G is built by
    `cooccurrence` and inverted in float32 with JAX (LU, `jnp.linalg.inv`: as accurate as a
    Cholesky solve here and about as fast, with one [I, I] array less); at most two float32
    [I, I] arrays live at once (2 · I² · 4 bytes: 5.7 GB at 26,744 items). On CPU the LU
    and its triangular solves are jax's LAPACK calls into scipy's OpenBLAS (not numpy's),
    in float32; they ran at 26,744 items (tests/test_baselines.py, slow).
    float32 is enough: tests/test_baselines.py checks B against float64 numpy on the
    definition (|ΔB| ≤ 2e-6, ≥ 99 % of top-10 lists the same) and, at 26,744 items, that
    G (e_j - B[:, j]) vanishes off j (≤ 1e-5).

    Raises ConfigError if l2 ≤ 0, and BaselineTooLarge before any work when the two
    [I, I] arrays exceed the memory `available_bytes` reports (the message says to drop
    'ease' from eval.baselines).
    """
    if l2 <= 0:
        raise ConfigError(f"eval.ease_l2={l2} must be positive (EASE's lambda, e.g. 500)")
    check_fits("ease", split.num_items, _EASE_ARRAYS)
    inputs, _ = split.stage(stage)
    sets = item_sets(split.train, inputs, num_items=split.num_items)
    return _ease_solve(cooccurrence(sets, split.num_items), jnp.float32(l2))


def ease(split: Split, stage: str = "test", l2: float = 500.0):
    """EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

    Fits B with `ease_weights` (see there for the maths, the float32 accuracy and the
    memory it needs). Scores = x_u · B with x_u the multi-hot of the history passed in
    (hist_ids, hist_mask), built on the device. Returns score_fn(users [B], hist_ids
    [B, L], hist_mask [B, L]) -> float32 [B, I].

    Raises ConfigError (l2 ≤ 0) and BaselineTooLarge (B would not fit: the caller may go on
    without EASE).
    """
    return functools.partial(_ease_scores, ease_weights(split, stage, l2))


@jax.jit
def _ease_scores(weights, users, hist_ids, hist_mask):
    """Scores float32 [B, I] = multi-hot(hist_ids [B, L] where hist_mask) @ weights [I, I]."""
    del users
    rows = jnp.arange(hist_ids.shape[0])[:, None]
    x = jnp.zeros((hist_ids.shape[0], weights.shape[0]), jnp.float32)
    x = x.at[rows, hist_ids].max(jnp.asarray(hist_mask, jnp.float32))
    return x @ weights
