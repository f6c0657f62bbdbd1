"""IRGAN's players for item recommendation: Wang et al., "IRGAN: A Minimax Game for Unifying
Generative and Discriminative Information Retrieval Models", SIGIR 2017 (geek-ai/irgan,
item_recommendation/gen_model.py and dis_model.py).

Both the generator and the discriminator are the same matrix factorisation: score(u, i) =
<p_u, q_i> + b_i with user factors P [U, D], item factors Q [I, D] and item biases b [I],
initialised uniform(±init_delta) with zero biases, as in the official code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.embedding import dot_rows


class MF(nn.Module):
    """Matrix factorisation scorer. Shapes: B users, S items per user, D factors, I items."""

    num_users: int
    num_items: int
    dim: int = 5
    init_delta: float = 0.05
    dtype: jnp.dtype = jnp.float32  # compute dtype of the dot products (float32 sums)

    def setup(self):
        def uniform(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -self.init_delta, self.init_delta)

        part = nn.with_logical_partitioning
        self.user = self.param(
            "user", part(uniform, ("users", "embed")), (self.num_users, self.dim)
        )
        self.item = self.param(
            "item", part(uniform, ("items", "embed")), (self.num_items, self.dim)
        )
        self.bias = self.param("bias", part(nn.initializers.zeros, ("items",)), (self.num_items,))

    def __call__(self, users, items):
        """users int [B], items int [B, S] → logits float32 [B, S]."""
        p = jnp.take(self.user, users, axis=0).astype(self.dtype)
        q = jnp.take(self.item, items, axis=0).astype(self.dtype)
        logits = jnp.einsum("bd,bsd->bs", p, q, preferred_element_type=jnp.float32)
        return logits + jnp.take(self.bias, items)

    def all_items(self, users):
        """users int [B] → logits over the whole catalogue, float32 [B, I]."""
        p = jnp.take(self.user, users, axis=0).astype(self.dtype)
        return dot_rows(p, self.item.astype(self.dtype)) + self.bias

    def user_vectors(self, users):
        """users int [B] → P[users], float32 [B, D]."""
        return jnp.take(self.user, users, axis=0)
