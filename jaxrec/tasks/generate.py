"""Virtual users from a trained GAN generator (CFGAN, IRGAN): `jaxrec generate`.

Shapes: B users, L history width, I items, n items per generated row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def generate(score_fn, params, users, hist_ids, hist_mask, rng, *, n: int, temperature=0.0):
    """Virtual user rows from a trained generator → item ids int32 [B, n], distinct per row.

    score_fn: a GAN task's `score` (the generator's output over the catalogue) and its
    inputs (users [B], the condition as hist_ids/hist_mask [B, L]). temperature 0: the top-n
    items of the generator's output (CFGAN's thresholded/top-N purchase vector);
    temperature > 0: n items drawn without replacement from softmax(scores / temperature)
    by Gumbel top-n (IRGAN's generator distribution; its config temperature is 0.2).
    """
    scores = score_fn(params, users, hist_ids, hist_mask).astype(jnp.float32)
    if temperature > 0:
        scores = scores / temperature + jax.random.gumbel(rng, scores.shape)
    return jax.lax.top_k(scores, n)[1].astype(jnp.int32)
