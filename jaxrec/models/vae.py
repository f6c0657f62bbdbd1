"""Mult-VAE and Mult-DAE: Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018 (official notebook: dawenl/vae_cf, VAE_ML20M_WWW2018).

Shapes: B batch of users, I items, H hidden widths, D latent size (the last of `layers`).

Both read a user's multi-hot row x [B, I], L2-normalise it, apply input dropout and run an
MLP [I → 600 → 200 → 600 → I] (default `layers=(600, 200)`; the decoder mirrors the
encoder) with tanh between layers and none after the last. The decoder's output is the
logits of a multinomial over the catalogue. Mult-VAE's encoder emits (μ, log σ²) of a
Gaussian q(z|x) (its last layer is 2D wide, as vae_cf's `q_dims[-1] * 2`); z = μ + ε·σ when
training, μ when scoring. Init as vae_cf: Glorot-uniform weights, biases N(0, 0.001²).

The item dimension is the big one: the first encoder kernel [I, H], the last decoder kernel
[H, I] and bias [I] carry the logical axis `items` (sharded over `model`), and so do the
[B, I] input and logits, via `nn.with_logical_constraint` (active under a mesh context;
otherwise GSPMD propagates the kernels' sharding to them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.sharding import RULES

_BIAS_INIT = nn.initializers.normal(0.001)


def constrain(x: jax.Array, axes: tuple[str | None, ...]) -> jax.Array:
    """`x` pinned to logical `axes` (jaxrec.sharding.RULES) when a mesh is in context."""
    return nn.with_logical_constraint(x, axes, rules=RULES)


class Dense(nn.Module):
    """x @ kernel + bias with logical axis names on both (kernel `axes`, bias `axes[1]`)."""

    features: int
    axes: tuple[str, str] = ("embed", "hidden")
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel_init = nn.with_logical_partitioning(nn.initializers.glorot_uniform(), self.axes)
        bias_init = nn.with_logical_partitioning(_BIAS_INIT, self.axes[1:])
        kernel = self.param("kernel", kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", bias_init, (self.features,))
        # Float32 accumulation whatever the input dtype: a bfloat16 dot that also returns
        # bfloat16 is slower on this CPU (avx512_bf16) than float32 itself.
        y = jnp.dot(
            x.astype(self.dtype), kernel.astype(self.dtype), preferred_element_type=jnp.float32
        )
        return y + bias


def _mlp(layers: list[Dense], h: jax.Array) -> jax.Array:
    """tanh between layers, none after the last (vae_cf's q and p networks)."""
    for j, layer in enumerate(layers):
        h = layer(h)
        if j < len(layers) - 1:
            h = jnp.tanh(h)
    return h


class MultVAE(nn.Module):
    """Mult-VAE (`variational=True`) or Mult-DAE (`variational=False`).

    __call__(x [B, I], train) -> (logits [B, I], μ [B, D], log σ² [B, D] or None);
    encode(x, train) -> (μ, log σ²) (DAE: the bottleneck, None); decode(z [B, D]) -> [B, I].
    Needs rngs 'dropout' (and 'sample' for the VAE) when `train`.
    """

    num_items: int
    layers: tuple[int, ...] = (600, 200)
    dropout: float = 0.5
    variational: bool = True
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        *hidden, latent = self.layers
        enc = [*hidden, 2 * latent if self.variational else latent]
        dec = [*hidden[::-1], self.num_items]
        self.encoder = [
            Dense(w, ("items" if j == 0 else "embed", "hidden"), self.dtype, name=f"enc_{j}")
            for j, w in enumerate(enc)
        ]
        self.decoder = [
            Dense(
                w,
                ("embed", "items" if j == len(dec) - 1 else "hidden"),
                self.dtype,
                name=f"dec_{j}",
            )
            for j, w in enumerate(dec)
        ]
        self.drop = nn.Dropout(self.dropout)

    def encode(self, x: jax.Array, train: bool = False):
        x = constrain(x.astype(jnp.float32), ("batch", "items"))
        # tf.nn.l2_normalize: x / sqrt(max(Σx², 1e-12)); an empty row stays 0.
        h = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))
        h = self.drop(h, deterministic=not train)
        h = _mlp(self.encoder, h)
        if not self.variational:  # vae_cf's DAE has tanh after every layer but the output
            return jnp.tanh(h), None
        d = self.layers[-1]
        return h[:, :d], h[:, d:]

    def decode(self, z: jax.Array) -> jax.Array:
        return constrain(_mlp(self.decoder, z), ("batch", "items"))

    def __call__(self, x: jax.Array, train: bool = False):
        mu, logvar = self.encode(x, train)
        z = mu
        if self.variational and train:
            eps = jax.random.normal(self.make_rng("sample"), mu.shape, mu.dtype)
            z = mu + eps * jnp.exp(0.5 * logvar)
        return self.decode(z), mu, logvar
