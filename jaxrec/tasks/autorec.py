"""I-AutoRec (Sedhain et al., WWW 2015) as a task: rating prediction, evaluated by RMSE;
its rating split, loss, `init_state`, `train_step`, `score`, `evaluate`, `dataset`, `build`.

Shapes: B batch of items, M row width, U users, I items.

AutoRec predicts explicit ratings, so it reads the ratings itself (the trainer's `Split`
holds item ids only): the rating events of `data.source` (after the configured filters) are
split uniformly at random, seeded by `train.seed`, into test (`data.test_ratio`, the
paper's 10%), validation (`data.valid_ratio`, carved out for early stopping) and train.
The trainer's ranking split is not used: `Task.evaluate` reports RMSE instead of ranking.

Each training example is an item's row of observed ratings over users (user ids + ratings
+ mask, `jaxrec.data.user_rows` with `values`); the dense [B, U] input is built on the
device. Objective, as the paper's: Σ over observed ratings of (r - ĥ)² + λ/2 (‖W‖² + ‖V‖²);
a mini-batch carries its share of the penalty (λ/2 · ‖·‖² · batch items / train items), so
one epoch sums to the paper's objective. Evaluation predicts each held-out (user, item)
from the item's input row (validation: train ratings; test: train + validation ratings),
clipped to the training rating range; a pair whose item has no input rating or whose user
has no training rating gets the paper's default, the middle of the range (3 on 1..5).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec import losses
from jaxrec.data.interactions import Sequences
from jaxrec.data.load import load_interactions
from jaxrec.errors import ConfigError
from jaxrec.models.autorec import AutoRec
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task
from jaxrec.tasks._user_rows import TrainState, masked_update, multi_hot, rows_dataset


@dataclasses.dataclass(frozen=True)
class Ratings:
    """Rating events split three ways; each part is (users int32, items int32, ratings f32)."""

    num_users: int
    num_items: int
    train: tuple
    valid: tuple
    test: tuple


def random_rating_split(data, valid: float, test: float, seed: int) -> Ratings:
    """Uniformly random split of the rating events (the paper's 90/10, plus validation)."""
    if data.ratings is None:
        raise ConfigError(f"{data.source}: AutoRec needs explicit ratings; this data has none")
    if not (0 <= valid and 0 < test and valid + test < 1):
        raise ConfigError(
            f"need 0 <= data.valid_ratio, 0 < data.test_ratio, sum < 1: {valid}, {test}"
        )
    n = len(data.user_ids)
    part = np.zeros(n, np.int8)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = int(round(test * n)), int(round(valid * n))
    part[order[:n_test]] = 2
    part[order[n_test : n_test + n_valid]] = 1
    cols = (data.user_ids, data.item_ids, data.ratings.astype(np.float32))
    parts = [tuple(np.asarray(c[part == k]) for c in cols) for k in range(3)]
    return Ratings(data.num_users, data.num_items, *parts)


def item_rows(events: tuple, num_items: int) -> tuple[Sequences, np.ndarray]:
    """Events → (rows of user ids per item as CSR, ratings aligned with its entries)."""
    users, items, ratings = events
    order = np.lexsort((users, items))
    indptr = np.zeros(num_items + 1, np.int64)
    np.cumsum(np.bincount(items, minlength=num_items), out=indptr[1:])
    return Sequences(indptr, users[order].astype(np.int32)), ratings[order]


@dataclasses.dataclass(frozen=True)
class StepConfig:
    model: AutoRec
    tx: optax.GradientTransformation
    l2: float
    num_rows: int  # items with a training rating: the rows of one epoch


def train_step(state: TrainState, batch, rng, *, c: StepConfig):
    """One update on a mini-batch of item rows: users = item ids int32 [B], ids = user ids
    int32 [B, M], values = ratings float32 [B, M], mask, valid → (state, metrics)."""
    del rng  # AutoRec is deterministic
    valid = batch["valid"]
    mask = batch["mask"] & valid[:, None]
    U = c.model.num_users
    r = multi_hot(batch["ids"], mask, U, batch["values"])
    observed = multi_hot(batch["ids"], mask, U)
    share = valid.sum().astype(jnp.float32) / c.num_rows

    def loss_fn(params):
        pred = c.model.apply({"params": params}, r)
        per_row = jnp.sum(observed * jnp.square(pred - r), axis=-1)
        sse = jnp.sum(jnp.where(valid, per_row, 0.0))
        sq = sum(jnp.sum(jnp.square(p["kernel"])) for p in params.values())
        return sse + 0.5 * c.l2 * share * sq, per_row

    (_, per_row), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = masked_update(state, c.tx, grads, valid.any())
    n_ratings = observed.sum()
    return state, {
        "loss": losses.masked_row_mean(per_row, valid),  # squared error per item row
        "examples": valid.sum(),
        "mse": jnp.sum(jnp.where(valid, per_row, 0.0)) / jnp.maximum(n_ratings, 1.0),
    }


@functools.partial(jax.jit, static_argnames=("model",))
def _predict(params, ids, mask, values, *, model):
    """Reconstructions [B, U] of item rows given as user ids + ratings."""
    return model.apply({"params": params}, multi_hot(ids, mask, model.num_users, values))


def _rows(seqs: Sequences, values: np.ndarray, items: np.ndarray, width: int):
    ids, mask = seqs.padded(items, width, left=False)
    vals = np.zeros(ids.shape, np.float32)
    for j, i in enumerate(items):
        v = values[seqs.indptr[i] : seqs.indptr[i + 1]][:width]
        vals[j, : len(v)] = v
    return ids, mask, vals


def evaluate(params, stage: str, *, model, ratings: Ratings, chunk: int = 256) -> dict:
    """RMSE and MAE of the predicted held-out ratings of `stage` ('valid' or 'test')."""
    start = time.perf_counter()
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    inputs = ratings.train
    if stage == "test":
        inputs = tuple(
            np.concatenate([a, b]) for a, b in zip(ratings.train, ratings.valid, strict=True)
        )
    users, items, truth = ratings.valid if stage == "valid" else ratings.test
    if len(truth) == 0:
        raise ConfigError(f"no held-out rating at stage {stage!r}: raise data.valid_ratio")
    seqs, values = item_rows(inputs, ratings.num_items)
    lo, hi = float(ratings.train[2].min()), float(ratings.train[2].max())
    pred = np.full(len(truth), (lo + hi) / 2, np.float32)
    known_user = np.bincount(ratings.train[0], minlength=ratings.num_users) > 0
    width = 1 << max(int(seqs.lengths.max()) - 1, 0).bit_length()
    targets = np.unique(items)
    for s in range(0, len(targets), chunk):
        block = targets[s : s + chunk]
        ids, mask, vals = _rows(seqs, values, np.resize(block, chunk), width)
        out = np.asarray(_predict(params, ids, mask, vals, model=model))
        local = np.full(ratings.num_items, -1)
        local[block] = np.arange(len(block))
        sel = np.flatnonzero(local[items] >= 0)
        pred[sel] = np.clip(out[local[items[sel]], users[sel]], lo, hi)
    fallback = (seqs.lengths[items] == 0) | ~known_user[users]
    pred[fallback] = (lo + hi) / 2
    err = pred - truth
    seconds = time.perf_counter() - start
    return {
        "protocol": "rating",
        "stage": stage,
        "num_users": int(len(np.unique(users))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "seconds": seconds,
        "users_per_second": len(np.unique(users)) / seconds,
    }


def score(params, users, hist_ids, hist_mask, *, model, train_rows):
    """Predicted ratings of every item for `users` [B] from the items' training rows
    (the history is not an input of I-AutoRec): float32 [B, I]."""
    del hist_ids, hist_mask
    ids, mask, vals = train_rows
    out = model.apply({"params": params}, multi_hot(ids, mask, model.num_users, vals))  # [I, U]
    return jnp.take(out, users, axis=1).T


def represent(params, users, hist_ids, hist_mask):
    """A user's decoder weights W[:, u]: the vector its predicted ratings read, [B, H]."""
    del hist_ids, hist_mask
    return jnp.take(params["decoder"]["kernel"], users, axis=1).T


def item_vectors(params, *, model, train_rows):
    """Each item's hidden code g(V r_i + μ) from its training ratings: [I, H]."""
    ids, mask, vals = train_rows
    r = multi_hot(ids, mask, model.num_users, vals)
    return jax.nn.sigmoid(model.apply({"params": params}, r, method=lambda m, x: m.encoder(x)))


def build(cfg, split, events=None) -> Task:
    """I-AutoRec on a random split of the rating events (`events`, else read from
    `cfg.data`; see module doc)."""
    del split  # the ranking split has no ratings; AutoRec makes its own (module doc)
    d = cfg.data
    events = load_interactions(d) if events is None else events
    ratings = random_rating_split(events, d.valid_ratio, d.test_ratio, cfg.train.seed)
    a = cfg.model.autorec
    model = AutoRec(ratings.num_users, a.hidden, jnp.dtype(cfg.model.compute_dtype))
    seqs, values = item_rows(ratings.train, ratings.num_items)
    num_rows = int(np.count_nonzero(seqs.lengths))
    B = cfg.train.batch_size
    tx = make_optimizer(cfg.optim, -(-num_rows // B) * cfg.train.epochs)

    def init_state(rng):
        params = model.init(rng, jnp.zeros((B, ratings.num_users), jnp.float32))["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    dataset = rows_dataset(seqs, cfg.train, values)

    width = int(seqs.lengths.max())
    train_rows = _rows(seqs, values, np.arange(ratings.num_items), width)
    return Task(
        name="autorec",
        init_state=init_state,
        train_step=functools.partial(train_step, c=StepConfig(model, tx, a.l2, max(num_rows, 1))),
        score=functools.partial(score, model=model, train_rows=train_rows),
        dataset=dataset,
        batch_axis=0,
        evaluate=functools.partial(evaluate, model=model, ratings=ratings),
        represent=represent,
        item_vectors=functools.partial(item_vectors, model=model, train_rows=train_rows),
    )
