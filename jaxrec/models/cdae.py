"""CDAE: Wu, DuBois, Zheng & Ester, "Collaborative Denoising Auto-Encoders for Top-N
Recommender Systems", WSDM 2016.

Shapes: B batch of users, I items, U users, H hidden.

A one-hidden-layer denoising autoencoder over a user's multi-hot row, with a user-specific
input node: z_u = h(Wᵀ ỹ_u + V_u + b), ŷ_u = f(W'ᵀ z_u + b') (paper eq. 3-4). ỹ_u is the
corrupted row: each entry dropped with probability q and the rest scaled by 1/(1 - q) (the
paper's unbiased drop-out corruption). `__call__` returns the pre-activation logits; with
the logistic loss f is the sigmoid inside the loss, and ranking by logits equals ranking by
ŷ for any monotone f. W [I, H], W' [H, I] and b' [I] carry the logical axis `items`, the user
node V [U, H] the axis `users`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.models.vae import Dense, constrain

ACTIVATIONS = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda x: x,
}


class CDAE(nn.Module):
    """__call__(x [B, I], users [B], train) -> (logits [B, I], z [B, H]).

    encode(x, users, train) -> z [B, H]; decode(z) -> logits [B, I]. Needs rng 'dropout'
    when `train`.
    """

    num_items: int
    num_users: int
    hidden: int = 50
    corruption: float = 0.5
    hidden_activation: str = "sigmoid"
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.enc = Dense(self.hidden, ("items", "hidden"), self.dtype)
        self.dec = Dense(self.num_items, ("embed", "items"), self.dtype)
        init = nn.with_logical_partitioning(nn.initializers.normal(0.01), ("users", "hidden"))
        self.user_node = self.param("user_node", init, (self.num_users, self.hidden))
        self.drop = nn.Dropout(self.corruption)

    def encode(self, x: jax.Array, users: jax.Array, train: bool = False) -> jax.Array:
        x = constrain(x.astype(jnp.float32), ("batch", "items"))
        x = self.drop(x, deterministic=not train)
        act = ACTIVATIONS[self.hidden_activation]
        return act(self.enc(x) + jnp.take(self.user_node, users, axis=0))

    def decode(self, z: jax.Array) -> jax.Array:
        return constrain(self.dec(z), ("batch", "items"))

    def __call__(self, x: jax.Array, users: jax.Array, train: bool = False):
        z = self.encode(x, users, train)
        return self.decode(z), z
