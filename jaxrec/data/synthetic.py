"""Deterministic synthetic behaviour with planted structure: the embedded default data set.

Items live on `num_clusters` rings. Each user has a home cluster and a hidden stride
s ∈ {1, 2, 3}: with probability 0.7 the next item is `s` steps further along the ring of the
current item, with 0.2 a popular item of the home cluster, with 0.1 a globally popular item
(Zipf popularity skew). A popularity ranker sees only the skew; a first-order Markov chain
sees the ring but not the user's stride; a sequence model can infer the stride from the
history, so the three are ordered on this data the way they are on real logs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrec.data.interactions import Interactions


def generate(
    num_users: int = 2000,
    num_items: int = 500,
    mean_length: float = 20.0,
    num_clusters: int = 10,
    seed: int = 0,
) -> Interactions:
    """Events of `num_users` users over `num_items` items; same arguments → same bytes."""
    rng = np.random.default_rng(seed)
    cluster_of = rng.permutation(num_items) % num_clusters
    rings = [np.flatnonzero(cluster_of == c) for c in range(num_clusters)]
    pos_in_ring = np.zeros(num_items, dtype=np.int64)
    for ring in rings:
        pos_in_ring[ring] = np.arange(len(ring))
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8  # Zipf over a random item order
    popularity = popularity[rng.permutation(num_items)]
    popularity /= popularity.sum()

    lengths = np.maximum(3, rng.poisson(mean_length, size=num_users))
    # Inverse-CDF draws, computed as Generator.choice(a, p=p) computes them (same bytes), but
    # with each distribution's CDF built once instead of once per event.
    global_cdf = _cdf(popularity)
    home_cdfs = [_cdf(popularity[ring] / popularity[ring].sum()) for ring in rings]
    users, items = [], []
    for u in range(num_users):
        c = rng.integers(num_clusters)
        home, home_cdf = rings[c], home_cdfs[c]
        stride = rng.integers(1, 4)
        cur = home[_draw(rng, home_cdf)]
        seq = [cur]
        for _ in range(lengths[u] - 1):
            r = rng.random()
            if r < 0.7:
                ring = rings[cluster_of[cur]]
                cur = ring[(pos_in_ring[cur] + stride) % len(ring)]
            elif r < 0.9:
                cur = home[_draw(rng, home_cdf)]
            else:
                cur = _draw(rng, global_cdf)
            seq.append(cur)
        users.append(np.full(len(seq), u))
        items.append(np.asarray(seq))
    users, items = np.concatenate(users), np.concatenate(items)
    # Raw ids are 1-based like most public logs; time is the position in the log. Every
    # item id 1..num_items is in the catalogue, also the ones no user happened to reach.
    data = Interactions.from_raw(
        users + 1, items + 1, np.arange(len(users), dtype=np.float64), source="<synthetic>"
    )
    catalogue = np.arange(1, num_items + 1).astype(str)
    return dataclasses.replace(
        data,
        item_ids=(data.item_vocab.astype(np.int64)[data.item_ids] - 1).astype(np.int32),
        item_vocab=catalogue,
    )


def _cdf(p: np.ndarray) -> np.ndarray:
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    return int(cdf.searchsorted(rng.random(), side="right"))
