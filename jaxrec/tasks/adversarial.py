"""Adversarial task: CFGAN (Chae et al., CIKM 2018) and IRGAN (Wang et al., SIGIR 2017).

Shapes: B rows of a batch, M row width, N vector width, I items, U users, S samples, D factors.

One state holds both players: `params = {"generator": ..., "discriminator": ...}` and one
optax state per player. One pure `train_step(state, batch, rng)` runs the configured number
of discriminator and generator updates on the batch's rows, drawing randomness from
`fold_in(rng, state.step)`. Rows come from `jaxrec.data.user_rows` as padded id lists; the
multi-hot vectors are built on the device. Evaluation scores with the generator.

CFGAN (Bigdasgit/CFGAN): per step, the ZR and PM entries are drawn once per row (the
official code draws them once per epoch), then `d_steps` passes of D updates over
`d_batch_size` sub-batches and `g_steps` passes of G updates over `g_batch_size` sub-batches,
the rows reshuffled before each pass, as the official epoch makes step_D passes with
batchSize_D and step_G with batchSize_G over all rows (`train.batch_size` ≥ the row count
makes one step exactly one official epoch).
Losses: D: BCE(D(c, x), 1) + BCE(D(c, G(c) ⊙ e), 0) + reg_D Σw²/2; G: BCE(D(c, G(c) ⊙ e), 1)
+ α Σ_ZR G(c)² + reg_G Σw²/2, with e = purchases ∪ PM samples; means over the real rows.
`mode: item` (the official default, `itemBased`) makes each row an item's vector over users;
`mode: user` (the paper) a user's vector over items.

IRGAN (geek-ai/irgan item_recommendation): both players are MF (`models.irgan.MF`). The
first `pretrain_epochs` epochs (selected by `state.step` with `lax.cond`, so a resumed run
stays in the right phase) pretrain both (or, as the official game, only G:
`pretrain_discriminator: false`) with BPR and dynamic negative sampling (cf_dns.py:
candidates drawn from the user's non-positive items); `d_warmup_epochs` then train D
alone; then each step makes `d_steps` D updates (positives vs. as many items drawn from G's
softmax at `temperature`; sigmoid BCE + l2 per example, summed as the official SGD on
per-example losses) and `g_steps` G updates (REINFORCE: 2|pos| items drawn from
p_n = (1-λ) p_G + λ·uniform(positives), reward 2(σ(D) - ½)·p_G/p_n, loss summed over users
as the official per-user SGD step).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrec import losses
from jaxrec.data.interactions import Sequences
from jaxrec.data.user_rows import user_rows_dataset
from jaxrec.errors import ConfigError
from jaxrec.models.cfgan import CFGANDiscriminator, CFGANGenerator
from jaxrec.models.irgan import MF
from jaxrec.optim import make_optimizer
from jaxrec.tasks import Task


class GANState(struct.PyTreeNode):
    """step: train steps done; params: {'generator', 'discriminator'}; opt_state: one per
    player (IRGAN adds 'pretrain')."""

    step: jax.Array
    params: dict
    opt_state: dict


def multi_hot(ids: jax.Array, mask: jax.Array, width: int) -> jax.Array:
    """Padded id rows int [B, M] + mask bool [B, M] → float32 [B, width] of 0/1."""
    rows = jnp.arange(ids.shape[0])[:, None]
    cols = jnp.where(mask, ids, width)  # padding points past the row and is dropped
    return jnp.zeros((ids.shape[0], width), jnp.float32).at[rows, cols].set(1.0, mode="drop")


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


def keep_if(keep: jax.Array, new, old):
    """`new` where `keep`, else `old`, leaf by leaf: an all-padding update moves nothing."""
    return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)


def sub_batches(tree, size: int, key=None):
    """Split the leading axis B into [B / size, size] for a scan over sub-batches, the rows
    permuted first when `key` is given (one pass of the official shuffled batch list)."""
    if key is not None:
        order = jax.random.permutation(key, jax.tree.leaves(tree)[0].shape[0])
        tree = jax.tree.map(lambda a: jnp.take(a, order, axis=0), tree)
    return jax.tree.map(lambda a: a.reshape(a.shape[0] // size, size, *a.shape[1:]), tree)


# --- CFGAN -----------------------------------------------------------------------------


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


def cfgan_train_step(state: GANState, batch, rng, *, s: CFGANStatic):
    """d_steps D passes, then g_steps G passes over the batch's rows (ids [B, M])."""
    c = s.c
    k_mask, k_d, k_g = jax.random.split(jax.random.fold_in(rng, state.step), 3)
    valid = batch["valid"].astype(jnp.float32)
    x = multi_hot(batch["ids"], batch["mask"], s.width) * valid[:, None]
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
        lambda carry, k: jax.lax.scan(d_update, carry, sub_batches((x, pm, valid), c.d_batch_size, k)),
        (p["discriminator"], o["discriminator"]),
        jax.random.split(k_d, c.d_steps),
    )  # fmt: skip
    (g_params, g_opt), g_losses = jax.lax.scan(
        lambda carry, k: jax.lax.scan(g_update, carry, sub_batches((x, pm, zr, valid), c.g_batch_size, k)),
        (p["generator"], o["generator"]),
        jax.random.split(k_g, c.g_steps),
    )  # fmt: skip
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
        return s.gen.apply({"params": params["generator"]}, multi_hot(hist_ids, hist_mask, s.width))
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


def build_cfgan(cfg, split) -> Task:
    c, t = cfg.model.cfgan, cfg.train
    if c.mode not in ("item", "user"):
        raise ConfigError(f"model.cfgan.mode={c.mode!r}: use item (official code) or user (paper)")
    for name in ("g_batch_size", "d_batch_size"):
        if t.batch_size % getattr(c, name):
            raise ConfigError(f"model.cfgan.{name} must divide train.batch_size={t.batch_size}")
    if c.shared_zr_pm and c.zr_ratio != c.pm_ratio:
        raise ConfigError("model.cfgan.shared_zr_pm needs pm_ratio == zr_ratio (one draw)")
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
        return GANState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt)

    score = functools.partial(cfgan_score, s=s)
    if item_mode:  # every item's training vector over users, a constant of the scorer
        dense = np.zeros((split.num_items, split.num_users), np.float32)
        dense[np.repeat(np.arange(rows.num_rows), rows.lengths), rows.items] = 1.0
        score = functools.partial(cfgan_score, s=s, items_by_user=dense)

    def dataset(process_index: int, process_count: int):
        return user_rows_dataset(
            rows, batch_size=t.batch_size, epochs=t.epochs, seed=t.seed, shuffle=t.shuffle,
            process_index=process_index, process_count=process_count,
        )  # fmt: skip

    return Task(
        name="cfgan",
        init_state=init_state,
        train_step=functools.partial(cfgan_train_step, s=s),
        score=score,
        dataset=dataset,
    )


# --- IRGAN -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IRGANStatic:
    mf: MF
    pre_tx: optax.GradientTransformation
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    pretrain_steps: int
    c: object  # IRGANConfig
    warmup_steps: int = 0  # D-only steps after pretraining


def inverse_cdf_sample(key, probs: jax.Array, num: int) -> jax.Array:
    """`num` draws with replacement from each row of probs float [B, I] → int32 [B, num]
    (np.random.choice(I, num, p=row)); O(num log I) per row, no [B, num, I] tensor."""
    cdf = jnp.cumsum(probs, axis=-1)
    u = jax.random.uniform(key, (probs.shape[0], num)) * cdf[:, -1:]
    idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side="right"))(cdf, u)
    return jnp.minimum(idx, probs.shape[1] - 1).astype(jnp.int32)


def dns_bpr_loss(params, key, users, pos, mask, x, s: IRGANStatic):
    """BPR with dynamic negative sampling (cf_dns.py) on one player: each positive is paired
    with the best-scored of `dns_candidates` uniform non-positive items; mean over pairs of
    -log σ(x_up - x_un) + l2/2 (|p_u|² + |q_p|² + |q_n|² + b_p² + b_n²)."""
    B, M = pos.shape
    K = s.c.dns_candidates
    # Uniform over the user's non-positive items (cf_dns.py: all_items - set(pos)).
    cand = inverse_cdf_sample(key, 1.0 - x, M * K)
    cand_pos = jnp.take_along_axis(x, cand, axis=1) > 0  # only when every item is positive
    cand_score = jax.lax.stop_gradient(s.mf.apply({"params": params}, users, cand))
    cand_score = jnp.where(cand_pos, -jnp.inf, cand_score).reshape(B, M, K)
    best = jnp.argmax(cand_score, axis=-1)
    neg = jnp.take_along_axis(cand.reshape(B, M, K), best[..., None], axis=-1)[..., 0]
    pair = mask & jnp.isfinite(jnp.max(cand_score, axis=-1))  # some candidate was a negative
    x_pos = s.mf.apply({"params": params}, users, pos)
    x_neg = s.mf.apply({"params": params}, users, neg)
    p = params
    sq = lambda t, i: jnp.sum(jnp.square(jnp.take(t, i, axis=0)), axis=-1)  # noqa: E731
    reg = sq(p["user"], users)[:, None] + sq(p["item"], pos) + sq(p["item"], neg)
    reg = reg + jnp.square(p["bias"][pos]) + jnp.square(p["bias"][neg])
    per_pair = jax.nn.softplus(x_neg - x_pos) + 0.5 * s.c.pretrain_l2 * reg
    return jnp.sum(per_pair * pair) / jnp.maximum(pair.sum(), 1)


def irgan_d_loss(d_params, users, pos, neg, mask, s: IRGANStatic):
    """Σ over (positive, G-sampled negative) pairs of BCE(D(u, pos), 1) + BCE(D(u, neg), 0)
    + l2 Σ (|p_u|² + |q_i|² + b_i²) per example: the official per-example SGD loss summed."""
    x_pos = s.mf.apply({"params": d_params}, users, pos)
    x_neg = s.mf.apply({"params": d_params}, users, neg)
    p = d_params
    sq_u = jnp.sum(jnp.square(jnp.take(p["user"], users, axis=0)), axis=-1)[:, None]
    sq = lambda i: jnp.sum(jnp.square(jnp.take(p["item"], i, axis=0)), -1) + p["bias"][i] ** 2  # noqa: E731
    per = losses.sigmoid_bce(x_pos, 1.0) + losses.sigmoid_bce(x_neg, 0.0)
    per = per + s.c.l2 * (2 * sq_u + sq(pos) + sq(neg))
    return jnp.sum(per * mask)


def irgan_g_loss(g_params, users, samples, reward, smask, valid, s: IRGANStatic):
    """Σ over users of IRGAN's policy-gradient loss (+ g_l2 Σw²/2, 0 in the official code)."""
    log_p = jax.nn.log_softmax(s.mf.apply({"params": g_params}, users, method="all_items"))
    per_user = losses.irgan_policy_gradient(
        jnp.take_along_axis(log_p, samples, axis=1), reward, smask
    )
    return jnp.sum(per_user * valid) + s.c.g_l2 * losses.l2_half(g_params)


def irgan_pretrain(params, opt, key, users, pos, mask, x, s: IRGANStatic):
    kg, kd = jax.random.split(key)

    def both(p):
        loss = dns_bpr_loss(p["generator"], kg, users, pos, mask, x, s)
        if s.c.pretrain_discriminator:
            loss = loss + dns_bpr_loss(p["discriminator"], kd, users, pos, mask, x, s)
        return loss

    loss, g = jax.value_and_grad(both)(params)
    upd, new_opt = s.pre_tx.update(g, opt["pretrain"], params)
    keep = mask.any()
    new = keep_if(keep, (optax.apply_updates(params, upd), new_opt), (params, opt["pretrain"]))
    return new[0], {**opt, "pretrain": new[1]}, loss / 2, jnp.float32(0.0)


def irgan_adversarial(params, opt, key, users, pos, mask, x, s: IRGANStatic, train_g=True):
    """`d_steps` D updates, then `g_steps` G updates unless `train_g` is False (D warm-up)."""
    c, mf = s.c, s.mf
    valid = mask.any(axis=1)
    n_pos = mask.sum(axis=1)
    k_d, k_g = jax.random.split(key)

    def d_update(carry, k):
        d, o = carry
        logits = mf.apply({"params": params["generator"]}, users, method="all_items")
        neg = inverse_cdf_sample(k, jax.nn.softmax(logits / c.temperature), pos.shape[1])
        loss, g = jax.value_and_grad(irgan_d_loss)(d, users, pos, neg, mask, s)
        upd, o = s.d_tx.update(g, o, d)
        return (optax.apply_updates(d, upd), o), loss

    (d_params, d_opt), d_losses = jax.lax.scan(
        d_update, (params["discriminator"], opt["discriminator"]), jax.random.split(k_d, c.d_steps)
    )

    def g_update(carry, k):
        gp, o = carry
        prob = jax.nn.softmax(mf.apply({"params": gp}, users, method="all_items"))
        pn = (1 - c.sample_lambda) * prob + c.sample_lambda * multi_hot(
            pos, mask, prob.shape[1]
        ) / jnp.maximum(n_pos, 1)[:, None]
        samples = inverse_cdf_sample(k, pn, 2 * pos.shape[1])
        smask = jnp.arange(samples.shape[1])[None, :] < 2 * n_pos[:, None]
        reward = losses.irgan_reward(mf.apply({"params": d_params}, users, samples))
        weight = jnp.take_along_axis(prob, samples, 1) / jnp.take_along_axis(pn, samples, 1)
        loss, g = jax.value_and_grad(irgan_g_loss)(
            gp, users, samples, reward * weight, smask, valid, s
        )
        upd, o = s.g_tx.update(g, o, gp)
        return (optax.apply_updates(gp, upd), o), loss

    (g_params, g_opt), g_losses = jax.lax.scan(
        g_update, (params["generator"], opt["generator"]), jax.random.split(k_g, c.g_steps)
    )
    g_params, g_opt = keep_if(train_g, (g_params, g_opt), (params["generator"], opt["generator"]))
    params = {"generator": g_params, "discriminator": d_params}
    opt = {**opt, "generator": g_opt, "discriminator": d_opt}
    rows = jnp.maximum(valid.sum(), 1)
    return params, opt, jnp.mean(g_losses) / rows, jnp.mean(d_losses) / rows


def irgan_train_step(state: GANState, batch, rng, *, s: IRGANStatic):
    """Pretraining (BPR-DNS) while state.step < pretrain_steps, then the minimax game."""
    key = jax.random.fold_in(rng, state.step)
    users, pos = batch["users"], batch["ids"]
    mask = batch["mask"] & batch["valid"][:, None]
    x = multi_hot(pos, mask, s.mf.num_items)
    args = (state.params, state.opt_state, key, users, pos, mask, x)
    train_g = state.step >= s.pretrain_steps + s.warmup_steps
    params, opt, g_loss, d_loss = jax.lax.cond(
        state.step < s.pretrain_steps,
        lambda a: irgan_pretrain(*a, s=s),
        lambda a: irgan_adversarial(*a, s=s, train_g=train_g),
        args,
    )
    state = state.replace(step=state.step + 1, params=params, opt_state=opt)
    n = batch["valid"].sum()
    return state, {"loss": g_loss, "g_loss": g_loss, "d_loss": d_loss, "examples": n}


def build_irgan(cfg, split) -> Task:
    c, t = cfg.model.irgan, cfg.train
    mf = MF(split.num_users, split.num_items, c.embedding, c.init_delta,
            jnp.dtype(cfg.model.compute_dtype))  # fmt: skip
    steps_per_epoch = -(-int((split.train.lengths > 0).sum()) // t.batch_size)
    pre_tx = optax.adam(c.pretrain_learning_rate)
    s = IRGANStatic(
        mf, pre_tx, optax.sgd(c.g_learning_rate), optax.sgd(c.d_learning_rate),
        c.pretrain_epochs * steps_per_epoch, c, c.d_warmup_epochs * steps_per_epoch,
    )  # fmt: skip
    users0, items0 = jnp.zeros((1,), jnp.int32), jnp.zeros((1, 1), jnp.int32)

    def init_state(rng):
        kg, kd = jax.random.split(rng)
        params = {
            "generator": mf.init(kg, users0, items0)["params"],
            "discriminator": mf.init(kd, users0, items0)["params"],
        }
        opt = {
            "pretrain": pre_tx.init(params),
            "generator": s.g_tx.init(params["generator"]),
            "discriminator": s.d_tx.init(params["discriminator"]),
        }
        return GANState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt)

    def score(params, users, hist_ids, hist_mask):
        return mf.apply({"params": params["generator"]}, users, method="all_items")

    def dataset(process_index: int, process_count: int):
        return user_rows_dataset(
            split.train, batch_size=t.batch_size, epochs=t.epochs, seed=t.seed,
            shuffle=t.shuffle, process_index=process_index, process_count=process_count,
        )  # fmt: skip

    return Task(
        name="irgan",
        init_state=init_state,
        train_step=functools.partial(irgan_train_step, s=s),
        score=score,
        dataset=dataset,
        represent=lambda params, users, hist_ids, hist_mask: mf.apply(
            {"params": params["generator"]}, users, method="user_vectors"
        ),
        item_vectors=lambda params: params["generator"]["item"],
    )


# --- synthetic behaviour --------------------------------------------------------------


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


def build(cfg, split) -> Task:
    """The GAN task named by cfg.model.name (cfgan | irgan) on `split.train`."""
    if cfg.model.name == "cfgan":
        return build_cfgan(cfg, split)
    if cfg.model.name == "irgan":
        return build_irgan(cfg, split)
    raise ConfigError(f"model.name={cfg.model.name!r} is not a GAN (cfgan, irgan)")
