"""Top-K ranking metrics: full ranking over the catalogue and the sampled-negative protocol.

Shapes: B batch (users), L history length, I items, K top-K, T targets per user, N negatives.
Everything on device is pure jax, float32 and jit-friendly (static arguments: `k`, `ks`,
`recall_denominator`); `sample_negatives` is host numpy because it reads CSR histories.

Two protocols, never mixed:
- full ranking: every item not in the user's history is a candidate (`mask_items`, `top_k`,
  `ranking_metrics`). This is the protocol the engine reports by default.
- sampled (SASRec, Kang & McAuley 2018, `evaluate` in kang205/SASRec): the target is ranked
  against N sampled negatives (`sample_negatives`, `sampled_rank`, `sampled_metrics`). Its
  numbers are much higher than full ranking and are not comparable with it; callers label them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec import sharding
from jaxrec.data.interactions import Sequences
from jaxrec.errors import ConfigError

_RECALL_DENOMINATORS = ("min", "all")


def mask_items(scores: jax.Array, ids: jax.Array, mask: jax.Array) -> jax.Array:
    """Set the scores of excluded (e.g. already seen) items to -inf.

    scores: float [B, I]; ids: int [B, L] item ids to exclude; mask: bool [B, L], False for
    padding (padded ids are ignored whatever their value). Returns float [B, I].

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import metrics
        >>> scores = jnp.array([[0.1, 0.9, 0.5, 0.3]])
        >>> # exclude item 1; the second slot is padding, so its id 0 is ignored
        >>> print(metrics.mask_items(scores, jnp.array([[1, 0]]), jnp.array([[True, False]])))
        [[ 0.1 -inf  0.5  0.3]]
    """
    num_items = scores.shape[-1]
    rows = jnp.arange(scores.shape[0])[:, None]
    # Padded entries point one past the catalogue and are dropped by the scatter, so a pad
    # id of 0 can never hide item 0.
    cols = jnp.where(mask, ids, num_items)
    return scores.at[rows, cols].set(-jnp.inf, mode="drop")


def top_k(scores: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The k best items per row → (values float [B, K], ids int32 [B, K]), best first.

    Ties are broken toward the lower item id (that is `lax.top_k`'s order); the `recommend`
    CSV prints items in this same order. Tie-breaking matters for models with many equal
    scores (popularity, counts): a tie is neither optimistic nor pessimistic for a target.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import metrics
        >>> values, ids = metrics.top_k(jnp.array([[0.1, 0.9, 0.5, 0.5]]), 3)
        >>> print(values, ids)
        [[0.9 0.5 0.5]] [[1 2 3]]
    """
    return sharding.top_k(scores, k)  # two-stage when the items are sharded


def _discounts(k: int) -> jax.Array:
    """1 / log2(rank + 2) for 0-based ranks 0..k-1 → float32 [k]."""
    return 1.0 / jnp.log2(jnp.arange(k, dtype=jnp.float32) + 2.0)


def ranking_metrics(
    top_ids: jax.Array,
    targets: jax.Array,
    target_mask: jax.Array,
    ks: tuple[int, ...],
    recall_denominator: str = "min",
) -> dict[str, jax.Array]:
    """Per-user full-ranking metrics from a top-K list.

    top_ids: int [B, K] ranked item ids (K >= max(ks)); an id < 0 never matches, which lets a
    caller blank out slots holding excluded (-inf) items. targets: int [B, T] relevant items
    (assumed distinct within a row); target_mask: bool [B, T], False for padding.
    ks: static tuple of cut-offs. recall_denominator: 'min' divides hits by min(k, |T|) as in
    Mult-VAE (Liang et al. 2018), so a perfect ranking scores 1; 'all' divides by |T|.

    Returns {'hr@k', 'recall@k', 'ndcg@k', 'mrr@k', 'precision@k' for each k, 'weight'}, each
    float32 [B]. Binary relevance throughout: NDCG uses a log2 discount and an ideal DCG over
    min(k, |T|) targets; MRR is 1/rank of the first hit within k, else 0. Users with no
    targets get 0 everywhere and weight 0: average a metric as sum(m * w) / sum(w).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import metrics
        >>> top_ids = jnp.array([[2, 1, 3]])  # ranked list of one user
        >>> targets, mask = jnp.array([[1, 3]]), jnp.array([[True, True]])
        >>> m = metrics.ranking_metrics(top_ids, targets, mask, ks=(1, 3))
        >>> print(m["hr@1"], m["recall@3"], m["mrr@3"], f"ndcg@3 {m['ndcg@3'][0]:.4f}")
        [0.] [1.] [0.5] ndcg@3 0.6934
    """
    if recall_denominator not in _RECALL_DENOMINATORS:
        raise ConfigError(
            f"recall_denominator must be one of {_RECALL_DENOMINATORS}, got {recall_denominator!r}"
        )
    kmax = max(ks)
    if top_ids.shape[-1] < kmax:
        raise ValueError(f"top_ids has {top_ids.shape[-1]} columns but ks asks for {kmax}")
    top_ids = top_ids[:, :kmax]
    valid = top_ids >= 0
    match = (top_ids[:, :, None] == targets[:, None, :]) & target_mask[:, None, :]
    hit = (jnp.any(match, axis=-1) & valid).astype(jnp.float32)  # [B, K]
    num_rel = jnp.sum(target_mask, axis=-1).astype(jnp.float32)  # [B]
    weight = (num_rel > 0).astype(jnp.float32)
    disc = _discounts(kmax)
    # ideal_dcg[n] = DCG of n relevant items at the top; index 0 (no targets) stays 0.
    ideal_dcg = jnp.concatenate([jnp.zeros(1, jnp.float32), jnp.cumsum(disc)])
    reciprocal = 1.0 / jnp.arange(1, kmax + 1, dtype=jnp.float32)

    out: dict[str, jax.Array] = {}
    for k in ks:
        hits = jnp.sum(hit[:, :k], axis=-1)
        n_ideal = jnp.minimum(num_rel, float(k))
        denom = n_ideal if recall_denominator == "min" else num_rel
        idcg = ideal_dcg[n_ideal.astype(jnp.int32)]
        out[f"hr@{k}"] = (hits > 0).astype(jnp.float32)
        out[f"recall@{k}"] = hits / jnp.maximum(denom, 1.0)
        out[f"ndcg@{k}"] = jnp.sum(hit[:, :k] * disc[:k], axis=-1) / jnp.where(idcg > 0, idcg, 1.0)
        out[f"mrr@{k}"] = jnp.max(hit[:, :k] * reciprocal[:k], axis=-1)
        out[f"precision@{k}"] = hits / float(k)
    out["weight"] = weight
    return out


def sampled_rank(
    target_scores: jax.Array, negative_scores: jax.Array, ties: str = "optimistic"
) -> jax.Array:
    """0-based rank of the target among itself and N negatives → int32 [B].

    target_scores: float [B]; negative_scores: float [B, N]. With ties='optimistic' (default)
    the rank is the number of negatives scoring strictly higher, i.e. ties favour the target.
    That is what SASRec's `(-predictions).argsort().argsort()[0]` gives with the target in
    column 0 under a stable sort (numpy's default quicksort does not promise stability, so
    SASRec's own tie order is implementation-defined). ties='pessimistic' counts ties against
    the target (>=), a bound worth checking for models with many equal scores.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import metrics
        >>> target, negatives = jnp.array([0.5]), jnp.array([[0.9, 0.5, 0.1]])
        >>> print(metrics.sampled_rank(target, negatives))
        [1]
        >>> print(metrics.sampled_rank(target, negatives, ties="pessimistic"))
        [2]
    """
    if ties == "optimistic":
        beats = negative_scores > target_scores[:, None]
    elif ties == "pessimistic":
        beats = negative_scores >= target_scores[:, None]
    else:
        raise ConfigError(f"ties must be 'optimistic' or 'pessimistic', got {ties!r}")
    return jnp.sum(beats, axis=-1).astype(jnp.int32)


def sampled_metrics(rank: jax.Array, ks: tuple[int, ...]) -> dict[str, jax.Array]:
    """Sampled-protocol metrics from 0-based ranks (one target per user).

    rank: int [B]. Returns float32 [B] arrays: 'hr@k' (rank < k), 'ndcg@k'
    (1/log2(rank+2) if rank < k, SASRec's NDCG with a single relevant item), 'mrr@k'
    (1/(rank+1) if rank < k) for each k, and 'mrr' (1/(rank+1) over all N+1 candidates).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrec import metrics
        >>> m = metrics.sampled_metrics(jnp.array([0, 3]), ks=(1, 10))
        >>> print(m["hr@1"], m["hr@10"], m["mrr"], f"ndcg@10 {m['ndcg@10'][1]:.4f}")
        [1. 0.] [1. 1.] [1.   0.25] ndcg@10 0.4307
    """
    r = rank.astype(jnp.float32)
    out: dict[str, jax.Array] = {}
    for k in ks:
        inside = r < k
        out[f"hr@{k}"] = inside.astype(jnp.float32)
        out[f"ndcg@{k}"] = jnp.where(inside, 1.0 / jnp.log2(r + 2.0), 0.0)
        out[f"mrr@{k}"] = jnp.where(inside, 1.0 / (r + 1.0), 0.0)
    out["mrr"] = 1.0 / (r + 1.0)
    return out


# --- host-side negative sampling ------------------------------------------------------------

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a counter-based hash."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def _gather_rows(seqs: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated rows of `users` → (row index int64 [nnz], item int64 [nnz]), vectorised."""
    starts, ends = seqs.indptr[users], seqs.indptr[users + 1]
    lengths = ends - starts
    row = np.repeat(np.arange(len(users)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return row, seqs.items[np.repeat(starts, lengths) + offsets].astype(np.int64)


def sample_negatives(
    history: Sequences, users: np.ndarray, num_items: int, n: int, seed: int
) -> np.ndarray:
    """N uniform negatives per user, never an item of the user's history → int32 [B, N].

    history: CSR rows indexed by dense user id holding everything the user interacted with.
    The evaluator passes the stage's input row plus its targets, so neither the validation
    item nor the target can be drawn as a negative. SASRec excludes only the train items
    (`rated = set(train[u])`), so there the validation item, and for a repeated item even the
    target, can come up as a "negative"; ours is the stricter, cleaner reading.

    Draws are with replacement among the allowed items, as in SASRec. Draw j of user u is
    `hash(seed, u, j) mod I` (counter-based), and a user's negatives are its first N
    accepted draws, so the same (seed, user) gives the same negatives whatever the batch.
    Rejection runs in vectorised rounds over the whole batch, not a loop per negative.

    Examples:
        >>> import numpy as np
        >>> from jaxrec import metrics
        >>> from jaxrec.data.interactions import Sequences
        >>> history = Sequences.from_rows([[0, 1], [2]])
        >>> neg = metrics.sample_negatives(history, np.array([0, 1]), num_items=5, n=3, seed=0)
        >>> print(neg.shape, np.isin(neg[0], [0, 1]).any(), np.isin(neg[1], [2]).any())
        (2, 3) False False
        >>> # a user's draws depend on (seed, user) only, not on the batch it is in
        >>> print((metrics.sample_negatives(history, np.array([1]), 5, 3, 0) == neg[1]).all())
        True
    """
    users = np.asarray(users, dtype=np.int64)
    if n <= 0 or len(users) == 0:
        return np.zeros((len(users), max(n, 0)), dtype=np.int32)
    row, item = _gather_rows(history, users)
    seen_keys = np.unique(row * num_items + item)
    distinct_seen = np.bincount(seen_keys // num_items, minlength=len(users))
    if np.any(distinct_seen >= num_items):
        bad = int(users[np.argmax(distinct_seen >= num_items)])
        raise ValueError(f"user {bad} has interacted with every item: no negative to sample")
    user_key = _splitmix64(
        _splitmix64(np.full(len(users), seed, dtype=np.uint64)) ^ users.astype(np.uint64)
    )
    out = np.zeros((len(users), n), dtype=np.int32)
    filled = np.zeros(len(users), dtype=np.int64)
    todo = np.arange(len(users))
    drawn = 0
    per_round = n + n // 4 + 8  # a bit over n: most users finish in one round
    while len(todo):
        counter = np.arange(drawn, drawn + per_round, dtype=np.uint64)
        h = _splitmix64(user_key[todo, None] ^ _splitmix64(counter)[None, :])
        cand = (h % np.uint64(num_items)).astype(np.int64)  # modulo bias ~ I / 2**64
        keys = todo[:, None] * num_items + cand
        pos = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
        ok = seen_keys[pos] != keys if len(seen_keys) else np.ones_like(keys, dtype=bool)
        # The j-th accepted draw of a row goes to column filled + j, if that is still < n.
        slot = filled[todo, None] + np.cumsum(ok, axis=1) - 1
        take = ok & (slot < n)
        r, c = np.nonzero(take)
        out[todo[r], slot[r, c]] = cand[r, c]
        filled[todo] = np.minimum(filled[todo] + ok.sum(axis=1), n)
        todo = todo[filled[todo] < n]
        drawn += per_round
    return out
