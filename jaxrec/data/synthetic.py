"""Deterministic synthetic behaviour with planted structure: the embedded default data set.

Items live on `num_clusters` rings. Each user has a home cluster and a hidden stride
s ∈ {1, 2, 3}: with probability 0.7 the next item is `s` steps further along the ring of the
current item, with 0.2 a popular item of the home cluster, with 0.1 a globally popular item
(Zipf popularity skew). A popularity ranker sees only the skew; a first-order Markov chain
sees the ring but not the user's stride; a sequence model can infer the stride from the
history, so the three are ordered on this data the way they are on real logs.
"""

from __future__ import annotations

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
    users, items = [], []
    for u in range(num_users):
        home = rings[rng.integers(num_clusters)]
        stride = rng.integers(1, 4)
        home_pop = popularity[home] / popularity[home].sum()
        cur = rng.choice(home, p=home_pop)
        seq = [cur]
        for _ in range(lengths[u] - 1):
            r = rng.random()
            if r < 0.7:
                ring = rings[cluster_of[cur]]
                cur = ring[(pos_in_ring[cur] + stride) % len(ring)]
            elif r < 0.9:
                cur = rng.choice(home, p=home_pop)
            else:
                cur = rng.choice(num_items, p=popularity)
            seq.append(cur)
        users.append(np.full(len(seq), u))
        items.append(np.asarray(seq))
    users, items = np.concatenate(users), np.concatenate(items)
    # Raw ids are 1-based like most public logs; time is the position in the log.
    return Interactions.from_raw(
        users + 1, items + 1, np.arange(len(users), dtype=np.float64), source="<synthetic>"
    )
