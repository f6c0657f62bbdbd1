"""Chunked evaluation (full ranking or sampled negatives) and top-K recommendation.

Shapes: B chunk of users, L history length, I items, K top-K, T targets per user, N negatives.

A model is seen through one function, `score_fn(users int32 [B], hist_ids int32 [B, L],
hist_mask bool [B, L]) -> float32 [B, I]`: a score for every item. Inputs arrive as numpy
arrays (a jitted function takes them as is; a host baseline reads them without a device
round trip); histories are left-padded, newest item in the last column, and hold the last
`max_history` items of the stage's input row; L is the chunk's longest history rounded up
to a power of two (at least `MIN_HISTORY_WIDTH`, at most `max_history`), so chunks of short
histories stay narrow (users are sorted by history length).

Both protocols use that one full-catalogue scorer. The sampled protocol gathers the target's
and the negatives' columns from the full row rather than asking the model for candidate
scores: one interface for every model, and scoring I items instead of N+1 costs little at
our catalogue sizes (tens of thousands of items) because chunks keep the [B, I] block bounded.

Memory: users go through in chunks of a fixed size (the last one padded with weight-0 rows),
so peak memory is one [B, I] score block whatever the number of users, and the jitted metric
step compiles once per shape. Sums stay on device and are fetched once at the end.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data import splits
from jaxrec.data.splits import Split
from jaxrec.errors import ConfigError, DataError
from jaxrec.metrics import (
    mask_items,
    ranking_metrics,
    sample_negatives,
    sampled_metrics,
    sampled_rank,
    top_k,
)

ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray], jax.Array]

_PROTOCOLS = ("full", "sampled")
_NON_METRIC_KEYS = ("protocol", "stage", "num_users", "recall_denominator", "seconds")


def _bucket(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum): rows are padded to a few shapes only."""
    return max(1 << max(int(n) - 1, 0).bit_length(), minimum)


# Narrowest history width handed to a scorer. 4 rather than 8: on short-history data
# (Games: half the users have at most 4 items) the narrower scorer is faster, for the cost
# of one more compiled shape.
MIN_HISTORY_WIDTH = 4

# Seen-item rows shorter than this share one shape: padding them costs a few KiB per chunk,
# while each extra shape costs a compilation of the metric step.
_MIN_SEEN_BUCKET = 64


def _chunks(users: np.ndarray, chunk_size: int):
    """Yield (chunk users int32 [C], valid float32 [C]) with the last chunk padded to C.

    C = min(chunk_size, len(users)), so small evaluations do not score empty rows. Padding
    repeats the chunk's first user (a real id every score_fn accepts) with valid = 0.
    """
    if chunk_size <= 0:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
    size = min(chunk_size, len(users))
    for start in range(0, len(users), size):
        part = users[start : start + size]
        valid = np.zeros(size, dtype=np.float32)
        valid[: len(part)] = 1.0
        padded = np.full(size, part[0], dtype=np.int32)
        padded[: len(part)] = part
        yield padded, valid


def _width(inputs, chunk: np.ndarray, max_history: int) -> int:
    """The chunk's history width: its longest input row rounded up to a power of two (at
    least `MIN_HISTORY_WIDTH`: few shapes to compile), at most `max_history`."""
    return min(max_history, _bucket(int(inputs.lengths[chunk].max()), MIN_HISTORY_WIDTH))


def _histories(inputs, chunk: np.ndarray, max_history: int):
    """The chunk's input rows, left-padded to `_width`."""
    return inputs.padded(chunk, _width(inputs, chunk, max_history))


def _ordered_users(split: Split, stage: str, users: np.ndarray | None) -> np.ndarray:
    """`split.eval_users(stage)` (or those of `users` among them), by input-row length:
    chunks of users with similar history lengths let a scorer trim its padding (sums do not
    depend on the order)."""
    all_users = split.eval_users(stage)
    users = all_users if users is None else np.intersect1d(all_users, np.asarray(users))
    return users[np.argsort(split.stage(stage)[0].lengths[users], kind="stable")]


def input_shapes(
    split: Split,
    stage: str,
    *,
    chunk_size: int = 1024,
    max_history: int = 200,
    users: np.ndarray | None = None,
) -> dict[tuple[int, int], int]:
    """{(B, L): chunks}: the history shapes `evaluate` hands `score_fn` over one pass with
    these settings, and how often (e.g. to count a pass's FLOPs from one lowering per shape)."""
    inputs, users = split.stage(stage)[0], _ordered_users(split, stage, users)
    counts: dict[tuple[int, int], int] = {}
    for chunk, _ in _chunks(users, chunk_size) if len(users) else ():
        shape = (len(chunk), _width(inputs, chunk, max_history))
        counts[shape] = counts.get(shape, 0) + 1
    return counts


def _excluded(scores: jax.Array, seen_ids: jax.Array, seen_mask: jax.Array, k: int):
    """Top-k after seen-item masking; slots holding an excluded (-inf) item get id -1."""
    values, ids = top_k(mask_items(scores.astype(jnp.float32), seen_ids, seen_mask), k)
    return values, jnp.where(jnp.isneginf(values), -1, ids)


def _target_rank(scores, seen_ids, seen_mask, target):
    """Each user's single target: its 0-based place in the ranking `_excluded` would give
    (score descending, ties toward the lower id, seen items removed) → int32 [B], and
    whether it can be hit at all (not seen, score above -inf) → bool [B].

    One compare-and-count pass over the [B, I] scores instead of a masked copy and a top-k,
    which is several times cheaper than `lax.top_k` alone on CPU. Seen items ahead of the target are subtracted, each distinct id once (a
    sequential input row may repeat an item).
    """
    num_items = scores.shape[1]
    t = jnp.take_along_axis(scores, target[:, None], axis=1)  # [B, 1]
    cols = jnp.arange(num_items, dtype=target.dtype)[None, :]
    ahead = (scores > t) | ((scores == t) & (cols < target[:, None]))
    rank = jnp.sum(ahead, axis=1, dtype=jnp.int32)
    ids = jnp.sort(jnp.where(seen_mask, seen_ids, num_items), axis=1)  # padding sorts last
    first = (ids < num_items) & jnp.concatenate(
        [jnp.ones_like(ids[:, :1], bool), ids[:, 1:] != ids[:, :-1]], axis=1
    )
    s = jnp.take_along_axis(scores, jnp.minimum(ids, num_items - 1), axis=1)
    seen_ahead = first & ((s > t) | ((s == t) & (ids < target[:, None])))
    rank = rank - jnp.sum(seen_ahead, axis=1, dtype=jnp.int32)
    hittable = ~jnp.any(ids == target[:, None], axis=1) & (t[:, 0] > -jnp.inf)
    return rank, hittable


def _single_target_metrics(scores, seen_ids, seen_mask, target, target_mask, ks):
    """`ranking_metrics` for one target per user, from its rank (same keys and values)."""
    rank, hittable = _target_rank(scores, seen_ids, seen_mask, target)
    per_user = sampled_metrics(jnp.where(hittable, rank, scores.shape[1]), ks)
    per_user.pop("mrr")  # over the whole ranking: not a full-protocol metric
    for k in ks:  # one relevant item: recall = hr under either denominator
        per_user[f"recall@{k}"] = per_user[f"hr@{k}"]
        per_user[f"precision@{k}"] = per_user[f"hr@{k}"] / float(k)
    per_user["weight"] = target_mask.astype(jnp.float32)
    return per_user


@functools.partial(jax.jit, static_argnames=("ks", "recall_denominator"))
def _full_step(scores, seen_ids, seen_mask, tgt_ids, tgt_mask, valid, *, ks, recall_denominator):
    """One chunk's weighted metric sums (dict of float32 scalars, plus 'weight')."""
    if tgt_ids.shape[1] == 1:  # leave-one-out and the like: a rank is enough
        per_user = _single_target_metrics(
            scores.astype(jnp.float32), seen_ids, seen_mask, tgt_ids[:, 0], tgt_mask[:, 0], ks
        )
    else:
        _, ids = _excluded(scores, seen_ids, seen_mask, max(ks))
        per_user = ranking_metrics(ids, tgt_ids, tgt_mask, ks, recall_denominator)
    weight = per_user.pop("weight") * valid
    sums = {name: jnp.sum(v * weight) for name, v in per_user.items()}
    sums["weight"] = jnp.sum(weight)
    return sums


@functools.partial(jax.jit, static_argnames=("ks",))
def _sampled_step(scores, target, negatives, valid, *, ks):
    """One chunk's sampled-protocol sums: target [B] ranked against negatives [B, N]."""
    scores = scores.astype(jnp.float32)
    target_scores = jnp.take_along_axis(scores, target[:, None], axis=1)[:, 0]
    rank = sampled_rank(target_scores, jnp.take_along_axis(scores, negatives, axis=1))
    sums = {name: jnp.sum(v * valid) for name, v in sampled_metrics(rank, ks).items()}
    sums["weight"] = jnp.sum(valid)
    return sums


@jax.jit
def _accumulate(acc: dict, sums: dict) -> dict:
    """Running sums stay on device: no host sync per chunk."""
    return jax.tree.map(jnp.add, acc, sums)


def _check_request(protocol: str, ks, num_items: int) -> tuple[int, ...]:
    """The cut-offs as ints, once the protocol and every k (1..num_items) are known good."""
    if protocol not in _PROTOCOLS:
        raise ConfigError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) <= 0 or max(ks) > num_items:
        raise ConfigError(f"ks must be positive and at most the {num_items} items: {ks}")
    return ks


def evaluate(
    score_fn: ScoreFn,
    split: Split,
    stage: str,
    *,
    ks: tuple[int, ...] = (10, 20),
    protocol: str = "full",
    num_negatives: int = 100,
    chunk_size: int = 1024,
    max_history: int = 200,
    recall_denominator: str = "min",
    seed: int = 0,
    users: np.ndarray | None = None,
    one_chunk_per_shape: bool = False,
) -> dict:
    """Evaluate `score_fn` on `split.eval_users(stage)` → a flat dict of averages.

    protocol='full': rank the whole catalogue minus the user's entire input row (not only the
    last `max_history` items the model sees; `split.seen(stage)`, which adds the validation
    items under DiffRec's rule); seen rows are padded to power-of-two lengths.
    A target that also appears in the input row is therefore excluded and counts as a miss,
    the same for every model, and consistent with what `recommend` can return.
    Metrics: hr, recall, ndcg, mrr, precision @k (see `metrics.ranking_metrics`).

    protocol='sampled': SASRec's protocol; each user's single target is ranked against
    `num_negatives` uniform items outside input + target (`metrics.sample_negatives`, seeded
    per user by `seed`), ties counted for the target. Metrics: hr, ndcg, mrr @k and mrr.

    `users`: evaluate only these of `split.eval_users(stage)` (e.g. a sample, for timing).
    `one_chunk_per_shape`: run only the first chunk of each distinct input shape: it compiles
    every executable the whole pass would run, at a fraction of its cost (a warm-up before a
    timed pass); the metrics and 'num_users' are those chunks' only.

    Returns {'protocol': 'full' | 'sampled-N', 'stage', 'num_users', '<metric>@<k>': float,
    ..., 'seconds', 'users_per_second'} (+ 'recall_denominator' for full ranking). 'seconds'
    is wall time including host batching, scoring and compilation.
    """
    ks = _check_request(protocol, ks, split.num_items)
    start = time.perf_counter()
    inputs, targets = split.stage(stage)
    seen = split.seen(stage)
    users = _ordered_users(split, stage, users)
    if len(users) == 0:
        raise DataError(f"no user has a target at stage {stage!r}: nothing to evaluate")
    tgt_len = _bucket(int(targets.lengths[users].max()))
    if protocol == "sampled":
        if int(targets.lengths[users].max()) != 1:
            raise ConfigError(
                "the sampled protocol ranks exactly one target per user; this split has "
                "users with several targets: use protocol='full'"
            )
        history = seen.concat(targets)

    acc, shapes, num_users = None, set(), 0
    for chunk, valid in _chunks(users, chunk_size):
        hist_ids, hist_mask = _histories(inputs, chunk, max_history)
        seen_len = _bucket(int(seen.lengths[chunk].max()), _MIN_SEEN_BUCKET)
        if one_chunk_per_shape:
            if (hist_ids.shape, seen_len) in shapes:
                continue
            shapes.add((hist_ids.shape, seen_len))
        num_users += int(valid.sum())
        scores = score_fn(chunk, hist_ids, hist_mask)
        _check_scores(scores, len(chunk), split.num_items)
        if protocol == "full":
            seen_ids, seen_mask = seen.padded(chunk, seen_len)
            tgt_ids, tgt_mask = targets.padded(chunk, tgt_len, left=False)
            sums = _full_step(
                scores, seen_ids, seen_mask, tgt_ids, tgt_mask, valid,
                ks=ks, recall_denominator=recall_denominator,
            )  # fmt: skip
        else:
            target = targets.items[targets.indptr[chunk]].astype(np.int32)
            negatives = sample_negatives(history, chunk, split.num_items, num_negatives, seed)
            sums = _sampled_step(scores, target, negatives, valid, ks=ks)
        acc = sums if acc is None else _accumulate(acc, sums)

    sums = jax.device_get(acc)  # the one device → host transfer
    weight = float(sums.pop("weight"))
    seconds = time.perf_counter() - start
    result: dict = {
        "protocol": "full" if protocol == "full" else f"sampled-{num_negatives}",
        "stage": stage,
        "num_users": num_users,
    }
    if protocol == "full":
        result["recall_denominator"] = recall_denominator
    result.update({name: float(v) / weight for name, v in sorted(sums.items(), key=_metric_key)})
    result["seconds"] = seconds
    result["users_per_second"] = num_users / seconds
    return result


_METRIC_ORDER = ("hr", "ndcg", "mrr", "recall", "precision")


def _metric_key(item: tuple[str, object]) -> tuple[int, int]:
    """Order metrics by k, then hr, ndcg, mrr, recall, precision; un-cut 'mrr' goes last."""
    metric, _, k = item[0].partition("@")
    return (int(k) if k else 1 << 30, _METRIC_ORDER.index(metric))


def _check_scores(scores, batch: int, num_items: int) -> None:
    if tuple(scores.shape) != (batch, num_items):
        raise ConfigError(
            f"score_fn returned shape {tuple(scores.shape)}; expected ({batch}, {num_items}): "
            "one score per item of the catalogue for each user"
        )


def format_metrics(result: dict) -> str:
    """One line, e.g. `test full-ranking (2930 users): HR@10 0.0760 NDCG@10 0.0470 ...`."""
    label = "full-ranking" if result["protocol"] == "full" else result["protocol"]
    skip = set(_NON_METRIC_KEYS) | {"users_per_second"}
    parts = [f"{_pretty(name)} {value:.4f}" for name, value in result.items() if name not in skip]
    timing = f" [{result['seconds']:.1f} s, {result['users_per_second']:.0f} users/s]"
    return f"{result['stage']} {label} ({result['num_users']} users): " + " ".join(parts) + timing


def _pretty(name: str) -> str:
    metric, _, k = name.partition("@")
    pretty = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR", "recall": "Recall", "precision": "P"}
    return pretty.get(metric, metric) + (f"@{k}" if k else "")


@functools.partial(jax.jit, static_argnames=("k",))
def _recommend_step(scores, seen_ids, seen_mask, *, k):
    values, ids = _excluded(scores, seen_ids, seen_mask, k)
    return ids, values


def recommend(
    score_fn: ScoreFn,
    split: Split,
    stage: str,
    users: np.ndarray,
    k: int,
    *,
    chunk_size: int = 1024,
    max_history: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items for `users` from their `stage` input rows → (ids int32 [U, K], scores [U, K]).

    stage 'all': from each user's whole history (`splits.history`: every event, all stages),
    which is also what is excluded: serving. 'valid' / 'test': the evaluation lists, from
    the stage's input, excluding what the evaluation excludes (for 'test' under leave-one-out
    that includes the validation item, since test_input holds it). Order as `metrics.top_k`:
    best first, ties toward the lower item id. When fewer than k items remain, the extra
    slots hold id -1 and score -inf, never an excluded item.
    """
    if stage == "all":
        inputs = seen = splits.history(split)
    else:
        inputs, seen = split.stage(stage)[0], split.seen(stage)
    users = np.asarray(users, dtype=np.int32)
    if not 0 < k <= split.num_items:
        raise ConfigError(f"k must be in 1..{split.num_items}, got {k}")
    if len(users) == 0:
        return np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
    if users.min() < 0 or users.max() >= split.num_users:
        raise ConfigError(f"user ids must be dense ids in 0..{split.num_users - 1}")
    out_ids, out_scores = [], []
    for chunk, valid in _chunks(users, chunk_size):
        hist_ids, hist_mask = _histories(inputs, chunk, max_history)
        scores = score_fn(chunk, hist_ids, hist_mask)
        _check_scores(scores, len(chunk), split.num_items)
        seen_len = _bucket(int(seen.lengths[chunk].max()), _MIN_SEEN_BUCKET)
        seen_ids, seen_mask = seen.padded(chunk, seen_len)
        ids, values = _recommend_step(scores, seen_ids, seen_mask, k=k)
        n = int(valid.sum())
        out_ids.append(ids[:n]), out_scores.append(values[:n])
    ids, values = jax.device_get((out_ids, out_scores))
    return np.concatenate(ids).astype(np.int32), np.concatenate(values).astype(np.float32)
