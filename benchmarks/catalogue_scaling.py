"""Does a train step's cost follow the batch or the catalogue? Step time at several sizes.

    python benchmarks/catalogue_scaling.py configs/caser_games.yaml 100000 1000000
        [--set model.nextitnet.length_buckets=[]] [--steps 8]

Puts the config on the synthetic data (5,000 users, 30 events each on average; the same
overrides as the bench's family-scale cases) at each catalogue size, compiles the donated
step once, runs 3 warm-up steps, then prints the median of `--steps` timed steps
(`block_until_ready` before each clock stop) and the compiled step's instructions that
produce a whole [num_items, ...] table other than a row scatter (a copy or a dense rewrite
of a table means the step's cost grows with the catalogue). Give a config with length
buckets `--set model.nextitnet.length_buckets=[]`, so that every batch has one shape and no
compile lands inside the clock.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import jax

from jaxrec import config, sharding, trainer
from jaxrec.bench import SYNTHETIC_DATA
from jaxrec.step import compile_train_step


def measure(config_path: str, n: int, overrides: list[str], steps: int) -> None:
    """Print the median step time at `n` items and the step's whole-table writes."""
    sets = [*SYNTHETIC_DATA, f"data.synthetic.num_items={n}", "train.epochs=100", *overrides]
    run = trainer.prepare(config.load_config(config_path, sets))
    batches = iter(run.task.dataset(0, 1))

    def batch():
        b = next(batches)
        b.pop("_epoch"), b.pop("_last")
        return sharding.shard_batch(b, run.mesh, run.task.batch_axis)

    key, state = jax.random.key(0), run.state
    compiled = compile_train_step(run.task.train_step, run.mesh, run.shardings, "stop")
    step = compiled.compile(state, batch(), key)
    whole = re.compile(rf"= f32\[{n},")
    dense = [
        line.strip()[:120]
        for line in step.as_text().splitlines()
        if whole.search(line) and "scatter" not in line and " parameter(" not in line
    ]
    for _ in range(3):
        state, _ = step(state, batch(), key)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        b = batch()
        t = time.perf_counter()
        state, _ = step(state, b, key)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    print(
        f"{n:,} items: step median {1e3 * statistics.median(times):.1f} ms "
        f"(min {1e3 * min(times):.1f}); whole-table instructions other than row "
        f"scatters: {len(dense)}"
    )
    for line in dense[:8]:
        print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("items", type=int, nargs="+")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE override")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    for n in args.items:
        measure(args.config, n, args.set, args.steps)


if __name__ == "__main__":
    main()
