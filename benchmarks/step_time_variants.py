"""Time one task's train step under several override sets, in one process (ratios within a run).

    python benchmarks/step_time_variants.py configs/caser_games.yaml \
        --variant "config=" --variant "512 negatives=loss.n_sample=512" \
        --variant "sgd=optim.name=sgd;optim.weight_decay=0"

Each variant: NAME=KEY=VALUE[;KEY=VALUE...] (`--set`s of `jaxrec train`; empty after the
first `=` for the config as is). The step is compiled as `jaxrec train` compiles it
(`jaxrec.step.compile_train_step`) and run on the same first mini-batches of the pipeline:
5 warm-up calls, then the median of 25 timed calls, each stopped with `block_until_ready`.
Prints step p50 and steps per epoch × p50 (no input pipeline, no validation).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxrec import sharding, trainer
from jaxrec.config import load_config
from jaxrec.step import compile_train_step


def time_step(config: str, sets: list[str], warmup: int = 5, timed: int = 25) -> tuple[float, int]:
    """(median step seconds, steps per epoch) of `config` with `sets`."""
    cfg = load_config(config, sets)
    run = trainer.prepare(cfg)
    task, state = run.task, run.state
    it = iter(task.dataset(0, 1))
    batches = [
        sharding.shard_batch(
            {k: v for k, v in next(it).items() if not k.startswith("_")}, run.mesh, task.batch_axis
        )
        for _ in range(warmup + timed)
    ]
    step = compile_train_step(task.train_step, run.mesh, run.shardings, cfg.train.nonfinite)
    key = jax.random.key(0)
    for b in batches[:warmup]:
        state, m = step(state, b, key)
    jax.block_until_ready(m)
    times = []
    for b in batches[warmup:]:
        t = time.perf_counter()
        state, m = step(state, b, key)
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t)
    return float(np.median(times)), -(-task.examples_per_epoch // cfg.train.batch_size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--variant", action="append", required=True, metavar="NAME=SETS")
    a = p.parse_args()
    for v in a.variant:
        name, _, sets = v.partition("=")
        p50, steps = time_step(a.config, [s for s in sets.split(";") if s])
        print(
            f"{name:24s} step p50 {1e3 * p50:6.1f} ms × {steps} steps = {steps * p50:5.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
