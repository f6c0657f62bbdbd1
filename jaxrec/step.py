"""The one compiled train step: a task's pure `train_step` as `jaxrec train` runs it.

`compile_train_step` wraps the step in the non-finite guard and jits it with the state's
shardings in and out, the metrics replicated, the state donated, and every trace and call
under the run's mesh (row-sharded lookups and two-stage top-K read it while tracing). The
trainer, the benchmark suite and the tests all build their step here, so a benchmark times
the program that trains and a test checks it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxrec import sharding

NONFINITE = ("stop", "skip")


def all_finite(tree) -> jax.Array:
    """True where every float leaf of `tree` is finite (one fused reduction per leaf)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] or [jnp.array(True)]))


def guard_nonfinite(train_step: Callable, policy: str) -> Callable:
    """The task's step, plus on-device detection of non-finite numbers, for any family.

    Adds `finite` (bool) and `step_before`/`step_after` to the metrics. Every float metric
    counts (a task that reports `grad_norm` thereby has its gradients checked). `stop`: the
    host stops at the first flagged call and the last checkpoint stays the newest. `skip`:
    the new state is checked too (one read of every float leaf), and where anything is not
    finite the call's update is dropped with `lax.cond`, which selects whole buffers.
    """

    def step(state, batch, rng):
        new, metrics = train_step(state, batch, rng)
        ok = all_finite(metrics)
        if policy == "skip":
            ok = ok & all_finite(new)
            new = jax.lax.cond(ok, lambda: new, lambda: state)
        return new, {**metrics, "finite": ok, "step_before": state.step, "step_after": new.step}

    return step


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """`step(state, batch, rng) -> (state, metrics)`, compiled once per batch shape.

    state: the train state, with the shardings it was compiled for (donated: the caller's
    copy is invalid after the call); batch: `sharding.shard_batch`'s output (its own
    shardings are kept); rng: a key, replicated.
    """

    jitted: Callable
    mesh: Mesh

    def __call__(self, state, batch, rng):
        with jax.set_mesh(self.mesh):
            return self.jitted(state, batch, rng)

    def compile(self, state, batch, rng):
        """The ahead-of-time executable for these argument shapes: callable like the step
        (without the mesh: it is traced already), with XLA's `cost_analysis`,
        `memory_analysis` and `as_text` for the benchmark suite."""
        with jax.set_mesh(self.mesh):
            return self.jitted.lower(state, batch, rng).compile()


def compile_train_step(
    train_step: Callable, mesh: Mesh, state_shardings, nonfinite: str = "stop"
) -> TrainStep:
    """The task's `train_step`, guarded (`guard_nonfinite` with policy `nonfinite`) and jitted
    with `in_shardings=(state_shardings, batch as given, replicated rng)`,
    `out_shardings=(state_shardings, replicated metrics)` and `donate_argnums=0`.

    state_shardings: the state's tree of `NamedSharding`s (`sharding.logical_shardings`).
    """
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite={nonfinite!r}: expected one of {', '.join(NONFINITE)}")
    replicated = sharding.replicated(mesh)
    jitted = jax.jit(
        guard_nonfinite(train_step, nonfinite),
        in_shardings=(state_shardings, None, replicated),  # None: the batch's own shardings
        out_shardings=(state_shardings, replicated),
        donate_argnums=0,
    )
    return TrainStep(jitted, mesh)
