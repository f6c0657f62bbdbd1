"""Cost of the non-finite guard (`train.nonfinite`): the task's step alone vs. guarded.

    python benchmarks/guard_overhead.py [CONFIG] [--set KEY=VALUE ...] [--calls 30]

Compiles the task's `train_step` three ways: `stop` and `skip` with
`jaxrec.step.compile_train_step` (as the trainer does), and without the guard but with the
same shardings and donation; then times `--calls`
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
    from jaxrec.step import TrainStep, compile_train_step

    run = trainer.prepare(load_config(args.config, args.set))
    it = iter(run.task.dataset(0, 1))
    batches = []
    for _ in range(args.calls + 1):
        b = next(it)
        b.pop("_epoch"), b.pop("_last")
        batches.append(sharding.shard_batch(b, run.mesh, run.task.batch_axis))
    replicated = sharding.replicated(run.mesh)
    unguarded = jax.jit(
        run.task.train_step,
        in_shardings=(run.shardings, None, replicated),
        out_shardings=(run.shardings, replicated),
        donate_argnums=0,
    )
    steps = {
        "none": TrainStep(unguarded, run.mesh),
        "stop": compile_train_step(run.task.train_step, run.mesh, run.shardings, "stop"),
        "skip": compile_train_step(run.task.train_step, run.mesh, run.shardings, "skip"),
    }
    key = jax.random.key(0)
    states, times = {}, {name: [] for name in steps}
    for name, step in steps.items():
        state = jax.tree.map(lambda x: x.copy(), run.state)
        states[name], _ = step(state, batches[0], key)  # compile + warm-up
        jax.block_until_ready(states[name])
    for b in batches[1:]:
        for name, step in steps.items():
            t = time.perf_counter()
            states[name], m = step(states[name], b, key)
            jax.block_until_ready((states[name], m))
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["none"])
    print(f"{run.cfg.model.name}, {args.calls} calls each, median call time:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  guard {name:<5} {1e3 * med:8.2f} ms   {med / base:.3f}x")


if __name__ == "__main__":
    main()
