"""Popularity sampling of negatives, shared by GRU4Rec, NextItNet and Caser's sampled softmax.

Shapes: I items, S samples.

The official GRU4Rec (Hidasi & Karatzoglou, CIKM 2018) draws `loss.n_sample` extra
negatives ∝ popularity^alpha once per mini-batch, shared by its rows, and corrects the
logits by logQ. Popularity is `target_counts`: how often an item is a training target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Sequences


def target_counts(seqs: Sequences, num_items: int) -> np.ndarray:
    """How often each item appears as a training target (every item of a row but its
    first): float64 [I], the sampler's popularity."""
    rows = np.flatnonzero(seqs.lengths >= 2)
    targets = np.concatenate([seqs.row(u)[1:] for u in rows]) if len(rows) else np.zeros(0, int)
    return np.bincount(targets, minlength=num_items).astype(np.float64)


def sampler_tables(counts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(cdf of sampling ∝ count^alpha, log count), float32 [I] each; items never seen are
    never sampled."""
    w = np.where(counts > 0, counts, 1.0) ** alpha * (counts > 0)
    with np.errstate(divide="ignore"):
        log_counts = np.log(counts)
    return np.cumsum(w / w.sum()).astype(np.float32), np.maximum(log_counts, 0).astype(np.float32)


def shared_samples(key, sample_cdf: jax.Array, n: int) -> jax.Array:
    """`n` items ∝ count^alpha by inverse-cdf over `sample_cdf` [I], shared by the
    mini-batch: int32 [S]."""
    num_items = sample_cdf.shape[0]
    u = jax.random.uniform(key, (n,)) * sample_cdf[-1]
    samples = jnp.searchsorted(sample_cdf, u, side="right").astype(jnp.int32)
    return jnp.minimum(samples, num_items - 1)


def log_q(log_counts: jax.Array, items: jax.Array, logq: float, alpha: float) -> jax.Array:
    """logQ term of `items` (q ∝ count^alpha; the target's too, as TF's sampled softmax),
    weighted by `logq`: float32, shaped like `items`."""
    return logq * alpha * log_counts[items]
