"""optax optimizers and learning-rate schedules from `OptimConfig`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxrec.config import OptimConfig
from jaxrec.errors import ConfigError


def schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Learning rate per step: optional linear warm-up, then constant, cosine or linear decay."""
    lr, warm = cfg.learning_rate, cfg.warmup_steps
    decay_steps = max(1, total_steps - warm)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, decay_steps)
    elif cfg.schedule == "linear":
        main = optax.linear_schedule(lr, 0.0, decay_steps)
    else:
        raise ConfigError(f"optim.schedule={cfg.schedule!r}: use constant, cosine or linear")
    if warm <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])


def scale_by_adagrad(eps: float = 1e-6) -> optax.GradientTransformation:
    """g / sqrt(sum of g² + eps), accumulator starting at 0: the official GRU4Rec Adagrad.

    (optax's `scale_by_rss` returns 0 where the accumulator is 0; this is the exact form of
    the row-wise update in `jaxrec.embedding.adagrad_rows`, so dense and sparse agree.)
    """

    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(grads, acc, params=None):
        del params
        acc = jax.tree.map(lambda a, g: a + jnp.square(g), acc, grads)
        updates = jax.tree.map(lambda g, a: g / jnp.sqrt(a + eps), grads, acc)
        return updates, acc

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """Gradient clipping (optional) → the named optimizer with its schedule.

    Adagrad follows the official GRU4Rec: accumulator starts at 0, eps 1e-6 inside the
    root, optional heavy-ball momentum on the scaled step. Untouched rows get zero gradient, so the
    dense update leaves their values and accumulators unchanged, as the sparse original does.
    """
    lr = schedule(cfg, total_steps)
    if cfg.name == "adagrad":
        parts = [scale_by_adagrad()]
        if cfg.momentum:
            parts.append(optax.trace(decay=cfg.momentum))
        opt = optax.chain(*parts, optax.scale_by_learning_rate(lr))
    elif cfg.name == "adam":
        opt = optax.adam(lr)
    elif cfg.name == "adamw":
        opt = optax.adamw(lr, weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        opt = optax.sgd(lr, momentum=cfg.momentum or None)
    else:
        raise ConfigError(f"optim.name={cfg.name!r}: use adagrad, adam, adamw or sgd")
    if cfg.weight_decay and cfg.name != "adamw":
        opt = optax.chain(optax.add_decayed_weights(cfg.weight_decay), opt)
    if cfg.clip_norm:
        opt = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt)
    return opt
