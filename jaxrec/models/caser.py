"""Caser: Tang & Wang, "Personalized Top-N Sequential Recommendation via Convolutional
Sequence Embedding", WSDM 2018 (graytowne/caser_pytorch).

The last L item embeddings form an "image" [L, d]. Horizontal filters of every height
h = 1..L (n_h each) slide over it, go through φ_c and are max-pooled over positions
(union-level and point-level patterns); n_v vertical filters [L, 1] take weighted sums of
the rows (no activation, as in the official code). Both outputs, after dropout, go through
a fully-connected layer with φ_a to z [d]; z is concatenated with the user embedding P_u
and scored against an output item table W2 [I, 2d] plus a bias b2 [I]. `tied=True` is
RecBole's variant: a second layer φ_a(fc2 [z; P_u]) [d] scored against the input table E
(plus b2), with no W2.

Shapes: B batch, L window length, d embedding, I items, U users, C candidate columns.
Padding: the official code pads short windows with item 0, an ordinary learned row; here
items have no padding id, so padded positions read a learned padding vector `pad` [d].
Init as in the official code: embeddings ~ N(0, std 1/d), W2 ~ N(0, std 1/(2d)), b2 = 0; the
convolutions and the FC layer use PyTorch's default U(±1/√fan_in) for weights and biases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxrec.embedding import dot_rows
from jaxrec.models.dropout import dropout_scales

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
}


def _normal(std: float):
    return nn.initializers.normal(stddev=std)


def _torch_default(fan_in: int):
    """PyTorch's default Conv/Linear init, U(-1/√fan_in, 1/√fan_in), for weights and biases."""
    bound = 1.0 / fan_in**0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Caser(nn.Module):
    """Caser with horizontal + vertical convolutions, user embedding and W2/b2 output layer.

    Params: `E` [I, d] item embedding, `P` [U, d] user embedding, `pad` [d], `W2` [I, 2d],
    `b2` [I] (logical axes `items` / `users` on the tables), `conv_v` [L, n_v] + bias,
    `conv_h{h}` [h·d, n_h] + bias for h = 1..L, `fc1` [n_v·d + n_h·L, d] + bias.
    """

    num_items: int
    num_users: int
    length: int = 5  # L
    embedding: int = 50  # d
    horizontal_filters: int = 16  # n_h
    vertical_filters: int = 4  # n_v
    dropout: float = 0.5
    dropout_embed: float = 0.0  # on the window's item embeddings (not in the paper)
    dropout_user: float = 0.0  # on the user embedding P_u (not in the paper)
    conv_activation: str = "relu"
    fc_activation: str = "relu"
    tied: bool = False  # RecBole's output: fc2 to d, scored against E (no W2)
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        d, L, I, U = self.embedding, self.length, self.num_items, self.num_users
        table = nn.with_logical_partitioning
        self.E = self.param("E", table(_normal(1.0 / d), ("items", "embed")), (I, d))
        self.P = self.param("P", table(_normal(1.0 / d), ("users", "embed")), (U, d))
        self.pad = self.param("pad", _normal(1.0 / d), (d,))
        if self.tied:
            self.fc2 = self.param("fc2", _torch_default(2 * d), (2 * d, d))
            self.fc2_bias = self.param("fc2_bias", _torch_default(2 * d), (d,))
        else:
            self.W2 = self.param(
                "W2", table(_normal(1.0 / (2 * d)), ("items", "embed")), (I, 2 * d)
            )
        self.b2 = self.param("b2", table(nn.initializers.zeros, ("items",)), (I,))
        nv, nh = self.vertical_filters, self.horizontal_filters
        if nv:
            self.conv_v = self.param("conv_v", _torch_default(L), (L, nv))
            self.conv_v_bias = self.param("conv_v_bias", _torch_default(L), (nv,))
        conv_h = []
        for h in range(1, L + 1):
            fan = h * d
            conv_h.append(
                (
                    self.param(f"conv_h{h}", _torch_default(fan), (fan, nh)),
                    self.param(f"conv_h{h}_bias", _torch_default(fan), (nh,)),
                )
            )
        self.conv_h = conv_h if nh else []
        fan = nv * d + nh * L
        self.fc1 = self.param("fc1", _torch_default(fan), (fan, d))
        self.fc1_bias = self.param("fc1_bias", _torch_default(fan), (d,))

    def horizontal(self, emb: jax.Array) -> jax.Array:
        """emb [B, L, d] → φ_c(conv_h) max-pooled over positions, heights 1..L: [B, n_h·L]."""
        act = ACTIVATIONS[self.conv_activation]
        L, dt = emb.shape[1], self.dtype
        outs = []
        for h, (w, b) in enumerate(self.conv_h, start=1):
            # Each of the L-h+1 positions reads h consecutive rows: one matmul per height.
            windows = jnp.concatenate([emb[:, k : L - h + 1 + k] for k in range(h)], axis=-1)
            conv = jnp.dot(windows.astype(dt), w.astype(dt)).astype(jnp.float32) + b
            outs.append(act(conv).max(axis=1))
        return jnp.concatenate(outs, axis=-1)

    def __call__(self, users, ids, mask, train: bool = False) -> jax.Array:
        """users int32 [B], ids int32 [B, L], mask bool [B, L] (False = padding) → x [B, 2d].

        x = [φ_a(W1 · dropout([conv_v; conv_h]) + b1); P_u], the vector scored against W2.
        """
        emb = jnp.take(self.E, ids, axis=0)
        emb = jnp.where(mask[..., None], emb, self.pad)
        rates = (self.dropout, self.dropout_embed, self.dropout_user)
        key = self.make_rng("dropout") if train and any(rates) else None

        def drop(x, stream: int, rate: float):
            # One key per tensor (0: conv outputs, 1: embeddings, 2: P_u), so a rate of 0
            # leaves the other masks as they were; 16 random bits per element.
            if key is None or rate == 0:
                return x
            k = key if stream == 0 else jax.random.fold_in(key, stream)
            return x * dropout_scales(k, x.shape, rate)

        emb = drop(emb, 1, self.dropout_embed)
        feats = []
        if self.vertical_filters:
            v = jnp.einsum("bld,ln->bnd", emb, self.conv_v) + self.conv_v_bias[None, :, None]
            feats.append(v.reshape(v.shape[0], -1))  # n-major, as the official view(-1, n_v·d)
        if self.horizontal_filters:
            feats.append(self.horizontal(emb))
        out = drop(jnp.concatenate(feats, axis=-1), 0, self.dropout)
        dt = self.dtype
        z = jnp.dot(out.astype(dt), self.fc1.astype(dt)).astype(jnp.float32) + self.fc1_bias
        act = ACTIVATIONS[self.fc_activation]
        user = drop(jnp.take(self.P, users, axis=0), 2, self.dropout_user)
        x = jnp.concatenate([act(z), user], axis=-1)
        if self.tied:  # [B, d]
            return act(
                jnp.dot(x.astype(dt), self.fc2.astype(dt)).astype(jnp.float32) + self.fc2_bias
            )
        return x

    def score(self, x: jax.Array, cols: jax.Array | None = None) -> jax.Array:
        """x [B, 2d] ([B, d] tied) → float32 scores [B, I] (cols None), [B, C] for item ids
        cols [B, C] (each row its own), or [B, S] for ids cols [S] shared by every row."""
        W = self.item_vectors()
        if cols is None:
            return dot_rows(x, W) + self.b2
        if cols.ndim == 1:
            return dot_rows(x, W[cols]) + self.b2[cols]
        w, b = jnp.take(W, cols, axis=0), jnp.take(self.b2, cols, axis=0)
        return jnp.einsum("bd,bcd->bc", x, w, preferred_element_type=jnp.float32) + b

    def item_vectors(self) -> jax.Array:
        """The output item table W2 [I, 2d], or E [I, d] when tied (b2 a bias beside it)."""
        return self.E if self.tied else self.W2
