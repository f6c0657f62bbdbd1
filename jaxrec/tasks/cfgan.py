"""CFGAN (Chae et al., CIKM 2018; Bigdasgit/CFGAN) as a task: losses, `init_state`,
`train_step`, `score`, `dataset` and `build`.

Shapes: B rows of a batch, M row width, N vector width, I items, U users.

One state holds both players: `params = {"generator": ..., "discriminator": ...}` and one
optax state per player. One pure `train_step(state, batch, rng)` runs the configured number
of discriminator and generator updates on the batch's rows, drawing randomness from
`fold_in(rng, state.step)`. Rows come from `jaxrec.data.user_rows` as padded id lists; the
multi-hot vectors are built on the device. Evaluation scores with the generator.

Per step, the ZR and PM entries are drawn once per row (the official code draws them once
per epoch), then `d_steps` passes of D updates over `d_batch_size` sub-batches and
`g_steps` passes of G updates over `g_batch_size` sub-batches, the rows reshuffled before
each pass, as the official epoch makes step_D passes with batchSize_D and step_G with
batchSize_G over all rows (`train.batch_size` ≥ the row count makes one step exactly one
official epoch).
Losses: D: BCE(D(c, x), 1) + BCE(D(c, G(c) ⊙ e), 0) + reg_D Σw²/2; G: BCE(D(c, G(c) ⊙ e), 1)
+ α Σ_ZR G(c)² + reg_G Σw²/2, with e = purchases ∪ PM samples; means over the real rows.
`mode: item` (the official default, `itemBased`) makes each row an item's vector over users;
`mode: user` (the paper) a user's vector over items.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec import losses
from jaxrec.data.interactions import Sequences
from jaxrec.models.cfgan import CFGANDiscriminator, CFGANGenerator
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task
from jaxrec.tasks._user_rows import TrainState, keep_if, multi_hot, rows_dataset


def sample_unobserved(key, x: jax.Array, ratio: float, shared: bool = False) -> jax.Array:
    """CFGAN's ZR/PM draw: per row, floor(ratio · #unobserved) distinct entries chosen
    uniformly among the entries where x == 0 (np.random.choice(..., replace=False)).

    shared: every row reads one uniform per position in its list of unobserved entries
    (the official trainer's reseeding, see `CFGANConfig.reseeded_draws`): rows with equal
    counts pick the same positions, and draws with one key and two ratios are nested.
    x float [B, N] (0/1) → bool [B, N]; never selects an observed entry.
    """
    if shared:
        position = jnp.maximum(jnp.cumsum(x == 0, axis=1) - 1, 0)  # among the unobserved
        u = jax.random.uniform(key, x.shape[1:])[position]
    else:
        u = jax.random.uniform(key, x.shape)
    u = jnp.where(x > 0, 2.0, u)  # observed sort last
    count = jnp.floor((x.shape[1] - x.sum(axis=1)) * ratio + 1e-4).astype(jnp.int32)
    kth = jnp.take_along_axis(jnp.sort(u, axis=1), jnp.maximum(count - 1, 0)[:, None], axis=1)
    return (u <= kth) & (count > 0)[:, None] & (x == 0)


def sub_batches(tree, size: int, key=None):
    """Split the leading axis B into [B / size, size] for a scan over sub-batches, the rows
    permuted first when `key` is given (one pass of the official shuffled batch list)."""
    if key is not None:
        order = jax.random.permutation(key, jax.tree.leaves(tree)[0].shape[0])
        tree = jax.tree.map(lambda a: jnp.take(a, order, axis=0), tree)
    return jax.tree.map(lambda a: a.reshape(a.shape[0] // size, size, *a.shape[1:]), tree)


@dataclasses.dataclass(frozen=True)
class CFGANStatic:
    gen: CFGANGenerator
    dis: CFGANDiscriminator
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    width: int
    c: object  # CFGANConfig


def cfgan_d_loss(d_params, g_params, x, pm, valid, s: CFGANStatic):
    """Mean over real rows of BCE(D(x, x), 1) + BCE(D(x, G(x)·pm), 0), + reg_D Σw²/2."""
    fake = jax.lax.stop_gradient(s.gen.apply({"params": g_params}, x)) * pm
    real_logit = s.dis.apply({"params": d_params}, x, x)
    fake_logit = s.dis.apply({"params": d_params}, x, fake)
    per_row = losses.sigmoid_bce(real_logit, 1.0) + losses.sigmoid_bce(fake_logit, 0.0)
    n = jnp.maximum(valid.sum(), 1)
    return jnp.sum(per_row * valid) / n + s.c.d_l2 * losses.l2_half(d_params)


def cfgan_g_loss(g_params, d_params, x, pm, zr, valid, s: CFGANStatic):
    """Mean over real rows of BCE(D(x, G(x)·pm), 1) + α Σ_ZR G(x)², + reg_G Σw²/2."""
    out = s.gen.apply({"params": g_params}, x)
    logit = s.dis.apply({"params": d_params}, x, out * pm)
    per_row = losses.sigmoid_bce(logit, 1.0) + s.c.zr_coefficient * losses.cfgan_zr_penalty(out, zr)
    n = jnp.maximum(valid.sum(), 1)
    return jnp.sum(per_row * valid) / n + s.c.g_l2 * losses.l2_half(g_params)


def cfgan_masks(key, x: jax.Array, c) -> tuple[jax.Array, jax.Array]:
    """x float [B, N] (0/1) → (zr, pm) float [B, N]: the ZR entries (G's output pushed to
    0) and e = purchases ∪ PM entries (what D sees of G's output)."""
    k_zr, k_pm = jax.random.split(key)
    zr = sample_unobserved(k_zr, x, c.zr_ratio, c.reseeded_draws)
    if c.shared_zr_pm:
        pm = zr
    else:  # reseeded: the same stream again, as the official code's second draw
        pm = sample_unobserved(k_zr if c.reseeded_draws else k_pm, x, c.pm_ratio, c.reseeded_draws)
    return zr.astype(jnp.float32), jnp.maximum(x, pm.astype(jnp.float32))


def cfgan_train_step(state: TrainState, batch, rng, *, s: CFGANStatic):
    """d_steps D passes, then g_steps G passes over the batch's rows (ids [B, M])."""
    c = s.c
    k_mask, k_d, k_g = jax.random.split(jax.random.fold_in(rng, state.step), 3)
    valid = batch["valid"].astype(jnp.float32)
    x = multi_hot(batch["ids"], batch["mask"], s.width, axes=None) * valid[:, None]
    zr, pm = cfgan_masks(k_mask, x, c)
    p, o = state.params, state.opt_state

    def d_update(carry, mb):
        d, opt = carry
        loss, g = jax.value_and_grad(cfgan_d_loss)(d, p["generator"], *mb, s)
        upd, new_opt = s.d_tx.update(g, opt, d)
        keep = mb[-1].sum() > 0
        return keep_if(keep, (optax.apply_updates(d, upd), new_opt), (d, opt)), loss

    def g_update(carry, mb):
        gp, opt = carry
        loss, g = jax.value_and_grad(cfgan_g_loss)(gp, d_params, *mb, s)
        upd, new_opt = s.g_tx.update(g, opt, gp)
        keep = mb[-1].sum() > 0
        return keep_if(keep, (optax.apply_updates(gp, upd), new_opt), (gp, opt)), loss

    (d_params, d_opt), d_losses = jax.lax.scan(
        lambda carry, k: jax.lax.scan(
            d_update, carry, sub_batches((x, pm, valid), c.d_batch_size, k)
        ),
        (p["discriminator"], o["discriminator"]),
        jax.random.split(k_d, c.d_steps),
    )
    (g_params, g_opt), g_losses = jax.lax.scan(
        lambda carry, k: jax.lax.scan(
            g_update, carry, sub_batches((x, pm, zr, valid), c.g_batch_size, k)
        ),
        (p["generator"], o["generator"]),
        jax.random.split(k_g, c.g_steps),
    )
    state = state.replace(
        step=state.step + 1,
        params={"generator": g_params, "discriminator": d_params},
        opt_state={"generator": g_opt, "discriminator": d_opt},
    )
    g_loss, d_loss = jnp.mean(g_losses), jnp.mean(d_losses)
    n = valid.sum()
    return state, {"loss": g_loss, "g_loss": g_loss, "d_loss": d_loss, "examples": n}


def cfgan_score(params, users, hist_ids, hist_mask, *, s: CFGANStatic, items_by_user=None):
    """Generator scores float32 [B, I]. User mode: G(multi-hot of the history). Item mode:
    G over every item's training vector (`items_by_user` [I, U], constant), column per user;
    an item without training purchases has no signal and ranks last."""
    if items_by_user is None:
        return s.gen.apply(
            {"params": params["generator"]}, multi_hot(hist_ids, hist_mask, s.width, axes=None)
        )
    out = s.gen.apply({"params": params["generator"]}, items_by_user)  # [I, U]
    out = jnp.where(items_by_user.sum(axis=1, keepdims=True) > 0, out, -1e9)
    return jnp.take(out.T, users, axis=0)


def transpose_rows(seqs: Sequences, num_cols: int) -> Sequences:
    """Row-major CSR [R, C] → its transpose [C, R] (item rows listing their users)."""
    rows = np.repeat(np.arange(seqs.num_rows, dtype=np.int32), seqs.lengths)
    order = np.lexsort((rows, seqs.items))
    indptr = np.zeros(num_cols + 1, np.int64)
    np.cumsum(np.bincount(seqs.items, minlength=num_cols), out=indptr[1:])
    return Sequences(indptr, rows[order])


def build(cfg, split) -> Task:
    """The CFGAN task on the rows of `split.train` (its items' rows in item mode)."""
    c, t = cfg.model.cfgan, cfg.train
    item_mode = c.mode == "item"
    rows = transpose_rows(split.train, split.num_items) if item_mode else split.train
    width = split.num_users if item_mode else split.num_items
    axis = "users" if item_mode else "items"
    dtype = jnp.dtype(cfg.model.compute_dtype)
    gen = CFGANGenerator(width, tuple(c.generator), axis, dtype)
    dis = CFGANDiscriminator(tuple(c.discriminator), axis, dtype)
    steps = -(-int((rows.lengths > 0).sum()) // t.batch_size) * t.epochs
    g_tx = make_optimizer(cfg.optim, steps * c.g_steps * (t.batch_size // c.g_batch_size))
    d_tx = optax.adam(c.d_learning_rate)
    s = CFGANStatic(gen, dis, g_tx, d_tx, width, c)

    def init_state(rng):
        kg, kd = jax.random.split(rng)
        x = jnp.zeros((1, width), jnp.float32)
        params = {
            "generator": gen.init(kg, x)["params"],
            "discriminator": dis.init(kd, x, x)["params"],
        }
        # Optimizer moments share their parameter's logical axes, so they shard alike.
        opt = {
            "generator": g_tx.init(params["generator"]),
            "discriminator": d_tx.init(params["discriminator"]),
        }
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt)

    score = functools.partial(cfgan_score, s=s)
    if item_mode:  # every item's training vector over users, a constant of the scorer
        dense = np.zeros((split.num_items, split.num_users), np.float32)
        dense[np.repeat(np.arange(rows.num_rows), rows.lengths), rows.items] = 1.0
        score = functools.partial(cfgan_score, s=s, items_by_user=dense)

    dataset = rows_dataset(rows, t)

    return Task(
        name="cfgan",
        init_state=init_state,
        train_step=functools.partial(cfgan_train_step, s=s),
        score=score,
        dataset=dataset,
    )
