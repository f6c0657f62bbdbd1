"""GRU4Rec training and evaluation speed of jaxrec on one config (default: Games).

    python benchmarks/gru4rec_speed.py configs/gru4rec_games.yaml --calls 60 --out speed.json

Method: build the sharded state and the compiled step as `jaxrec train` does, time the first
call apart (compilation), run 5 warm-up calls, then time `--calls` calls of T mini-batches
each with `block_until_ready` before stopping the clock. Throughput counts valid next-item
predictions (one per training transition), the unit RecBole's epoch is made of too. Then one
full-ranking test evaluation, timed twice (the second without compilation), and the peak
resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import jax
import numpy as np


def main() -> None:
    from jaxrec import sharding, trainer
    from jaxrec.config import load_config, to_dict
    from jaxrec.step import compile_train_step

    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--out")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    run = trainer.prepare(cfg)
    it = iter(run.task.dataset(0, 1))
    step = compile_train_step(run.task.train_step, run.mesh, run.shardings, cfg.train.nonfinite)
    key = jax.random.key(0)

    def batches():
        while True:
            b = next(it)
            b.pop("_epoch"), b.pop("_last")
            yield sharding.shard_batch(b, run.mesh, run.task.batch_axis)

    feed = batches()
    state = run.state
    t = time.perf_counter()
    state, m = step(state, next(feed), key)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t
    for _ in range(5):
        state, m = step(state, next(feed), key)
    jax.block_until_ready(state)
    # Feed prepared on the host first, so the clock measures the device step only...
    prepared = [next(feed) for _ in range(args.calls)]
    examples = int(sum(np.asarray(b["valid"]).sum() for b in prepared))
    t = time.perf_counter()
    for b in prepared:
        state, m = step(state, b, key)
    jax.block_until_ready(state)
    step_s = time.perf_counter() - t
    # ...and once more including the grain pipeline, as in training.
    t, n = time.perf_counter(), 0
    for _ in range(args.calls):
        b = next(feed)
        n += int(np.asarray(b["valid"]).sum())
        state, m = step(state, b, key)
    jax.block_until_ready(state)
    loop_s = time.perf_counter() - t

    evals = [trainer.evaluate_params(run, state.params, "test", ("full",))[0] for _ in range(2)]
    T, B = cfg.train.steps_per_call, cfg.train.batch_size
    result = {
        "system": "jaxrec",
        "model": "gru4rec",
        "dataset": str(cfg.data.source),
        "compile_seconds": compile_s,
        "train_examples_per_second": examples / step_s,
        "train_examples_per_second_with_pipeline": n / loop_s,
        "minibatches_per_second": args.calls * T / step_s,
        "eval_users": evals[1]["num_users"],
        "eval_seconds_first": evals[0]["seconds"],
        "eval_seconds": evals[1]["seconds"],
        "eval_users_per_second": evals[1]["users_per_second"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch_size": B,
        "steps_per_call": T,
        "context": {
            "devices": [d.device_kind for d in jax.devices()],
            "jax": jax.__version__,
            "machine": platform.machine(),
            "cpus": len(__import__("os").sched_getaffinity(0)),
            "load_avg_1min": __import__("os").getloadavg()[0],
            "config": to_dict(cfg),
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "context"}, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2, default=str)


if __name__ == "__main__":
    main()
