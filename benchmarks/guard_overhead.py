"""Cost of the non-finite guard (`train.nonfinite`): the task's step alone vs. guarded.

    python benchmarks/guard_overhead.py [CONFIG] [--set KEY=VALUE ...] [--calls 30]

Compiles the task's `train_step` three ways (no guard, `stop`, `skip`; see
`jaxrec.trainer.guard_nonfinite`), each donated as the trainer does, and times `--calls`
calls of each after a warm-up, interleaved round by round so that machine load hits all
three alike; every call is stopped with `block_until_ready`. Prints the median call time
and the ratio to the unguarded step.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()

    import jax

    from jaxrec import sharding, trainer
    from jaxrec.config import load_config

    run = trainer.prepare(load_config(args.config, args.set))
    it = iter(run.task.dataset(0, 1))
    batches = []
    for _ in range(args.calls + 1):
        b = next(it)
        b.pop("_epoch"), b.pop("_last")
        batches.append(sharding.shard_batch(b, run.mesh, run.task.batch_axis))
    variants = {
        "none": run.task.train_step,
        "stop": trainer.guard_nonfinite(run.task.train_step, "stop"),
        "skip": trainer.guard_nonfinite(run.task.train_step, "skip"),
    }
    key = jax.random.key(0)
    states, steps, times = {}, {}, {name: [] for name in variants}
    with jax.set_mesh(run.mesh):
        for name, fn in variants.items():
            steps[name] = jax.jit(fn, donate_argnums=0)
            state = jax.tree.map(lambda x: x.copy(), run.state)
            states[name], _ = steps[name](state, batches[0], key)  # compile + warm-up
            jax.block_until_ready(states[name])
        for b in batches[1:]:
            for name in variants:
                t = time.perf_counter()
                states[name], m = steps[name](states[name], b, key)
                jax.block_until_ready((states[name], m))
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["none"])
    print(f"{run.cfg.model.name}, {args.calls} calls each, median call time:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  guard {name:<5} {1e3 * med:8.2f} ms   {med / base:.3f}x")


if __name__ == "__main__":
    main()
