"""I-AutoRec: Sedhain, Menon, Sanner & Xie, "AutoRec: Autoencoders Meet Collaborative
Filtering", WWW 2015 (companion).

Shapes: B batch of items, U users, H hidden.

Item-based AutoRec reconstructs an item's partially observed rating row r_i ∈ R^U:
h(r; θ) = f(W · g(V r + μ) + b) with g the sigmoid and f the identity (the paper's best
I-AutoRec), H = 500. The input's unobserved entries are 0; the loss (in the task) only
counts observed ratings. V [U, H] and W [H, U] carry the logical axis `users`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.models.vae import Dense, constrain


class AutoRec(nn.Module):
    """__call__(r [B, U]) -> reconstruction [B, U] (float32)."""

    num_users: int
    hidden: int = 500
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.encoder = Dense(self.hidden, ("users", "hidden"), self.dtype)
        self.decoder = Dense(self.num_users, ("embed", "users"), self.dtype)

    def __call__(self, r: jax.Array) -> jax.Array:
        r = constrain(r.astype(jnp.float32), ("batch", "users"))
        h = jax.nn.sigmoid(self.encoder(r))
        return constrain(self.decoder(h), ("batch", "users"))
