"""IRGAN item recommendation (Wang et al., SIGIR 2017; geek-ai/irgan) as a task: losses,
`init_state`, `train_step`, `score`, `dataset` and `build`.

Shapes: B users of a batch, M row width, I items, S samples, D factors.

One state holds both players, MF models (`models.irgan.MF`): `params = {"generator": ...,
"discriminator": ...}` and one optax state per player plus "pretrain". Rows come from
`jaxrec.data.user_rows` as padded id lists. Evaluation scores with the generator.

The first `pretrain_epochs` epochs (selected by `state.step` with `lax.cond`, so a resumed
run stays in the right phase) pretrain both (or, as the official game, only G:
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
import optax

from jaxrec import losses
from jaxrec.models.irgan import MF
from jaxrec.tasks import Task
from jaxrec.tasks._user_rows import TrainState, keep_if, multi_hot, rows_dataset


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
            pos, mask, prob.shape[1], axes=None
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


def irgan_train_step(state: TrainState, batch, rng, *, s: IRGANStatic):
    """Pretraining (BPR-DNS) while state.step < pretrain_steps, then the minimax game."""
    key = jax.random.fold_in(rng, state.step)
    users, pos = batch["users"], batch["ids"]
    mask = batch["mask"] & batch["valid"][:, None]
    x = multi_hot(pos, mask, s.mf.num_items, axes=None)
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


def build(cfg, split) -> Task:
    """The IRGAN task on the rows of `split.train`."""
    c, t = cfg.model.irgan, cfg.train
    mf = MF(
        split.num_users,
        split.num_items,
        c.embedding,
        c.init_delta,
        jnp.dtype(cfg.model.compute_dtype),
    )
    steps_per_epoch = -(-int((split.train.lengths > 0).sum()) // t.batch_size)
    pre_tx = optax.adam(c.pretrain_learning_rate)
    s = IRGANStatic(
        mf,
        pre_tx,
        optax.sgd(c.g_learning_rate),
        optax.sgd(c.d_learning_rate),
        c.pretrain_epochs * steps_per_epoch,
        c,
        c.d_warmup_epochs * steps_per_epoch,
    )
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
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt)

    def score(params, users, hist_ids, hist_mask):
        return mf.apply({"params": params["generator"]}, users, method="all_items")

    dataset = rows_dataset(split.train, t)

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
