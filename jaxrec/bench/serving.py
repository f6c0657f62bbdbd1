"""Benchmark cases beyond training: exported-scorer latency and per-device table memory.

`scorer_case`: GRU4Rec at a synthetic catalogue of `num_items`, exported at its initial
parameters (latency does not depend on training) with `max_k` 100, loaded with
`jaxrec.load_scorer`. At 1, 32 and 256 requests it times, after a warm-up call, each stopped
with `block_until_ready`, the four paths taking turns call by call:

- `exported`: the artifact's compiled `recommend` on prepared arrays;
- `jitted`: the same function (`serving.export._recommend_fn`) jitted in process, same arrays;
- `recommend()`: the scorer's whole call, raw ids in and out (host id mapping included);
- `numpy`: a brute-force numpy scorer of the same top-100 from the same user vectors:
  `h @ Wy.T + By`, seen items set to -inf, `argpartition` + sort. The GRU that makes `h`
  is not timed for numpy, so this favours numpy.

`shard_memory_case`: the same GRU4Rec step on 8 (fake CPU) devices with the item tables
row-sharded 1, 2, 4 and 8 ways (`mesh.model`): per-device bytes of the item tables and
their optimizer state, read from the arrays' shards, against the ideal total / n (the
negative sampler's replicated [I] popularity arrays are reported apart); and the compiled
step's (`step.compile_train_step`) per-device argument and temp bytes from XLA's memory
analysis.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from jaxrec.bench.records import percentile

REQUESTS = (1, 32, 256)


def _interleaved_times(paths: dict, calls: int) -> dict[str, list[float]]:
    """Seconds of each call of each path, the paths taking turns call by call, so that a
    change of machine load hits them alike (their ratios are what the table compares). The
    order rotates every round: whichever path follows the numpy one finds the caches cold."""
    import jax

    for fn in paths.values():
        jax.block_until_ready(fn())  # warm-up (and compile)
    out = {name: [] for name in paths}
    names = list(paths)
    for i in range(calls):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            fn = paths[name]
            t = time.perf_counter()
            jax.block_until_ready(fn())
            out[name].append(time.perf_counter() - t)
    return out


def _numpy_top_k(h, wy, by, ex_ids, ex_mask, k: int):
    scores = h @ wy.T + by
    r, c = np.nonzero(ex_mask)
    scores[r, ex_ids[r, c]] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def scorer_case(case: dict, add) -> None:
    """Latency records of the four scoring paths (module doc) via `add(metric, value, unit,
    params)`."""
    import jax

    from jaxrec import trainer
    from jaxrec.config import load_config
    from jaxrec.serving.export import _recommend_fn, export_run
    from jaxrec.serving.scorer import load_scorer

    run = trainer.prepare(load_config(None, case["set"]))
    params = jax.device_get(run.state.params)
    k = min(100, run.split.num_items)
    hist, _ = run.split.stage("test")
    users = np.flatnonzero(hist.lengths > 0)
    in_process = jax.jit(_recommend_fn(run.task.score, k))
    represent = jax.jit(run.task.represent)
    wy, by = np.asarray(params["Wy"]), np.asarray(params["By"]).reshape(-1)
    with tempfile.TemporaryDirectory() as tmp:
        export_run(run, params, Path(tmp) / "scorer", max_k=k)
        scorer = load_scorer(Path(tmp) / "scorer")
        dev_params = jax.device_put(params)
        for b in REQUESTS:
            chosen = np.resize(users, b)
            inputs = [run.data.item_vocab[hist.row(u)].tolist() for u in chosen]
            n, *arrays = scorer._batch(inputs, None, None, True, "error")
            h = np.asarray(represent(params, *arrays[:3]))
            paths = {
                "exported": lambda a=arrays: scorer._recommend(scorer.params, *a),
                "jitted": lambda a=arrays: in_process(dev_params, *a),
                "recommend()": lambda i=inputs: scorer.recommend(i, k),
                "numpy": lambda h=h, a=arrays: _numpy_top_k(h, wy, by, a[3], a[4], k),
            }
            for path, times in _interleaved_times(paths, case["calls"]).items():
                for q in (50, 99):
                    ms = 1e3 * percentile(times, q)
                    add(f"scorer_latency_p{q}", ms, "ms", {"requests": b, "path": path, "k": k})


def shard_memory_case(case: dict, add) -> None:
    """Per-device bytes of the item tables (+ optimizer state) at `case["shards"]` row shards
    (default 1, 2, 4, 8)."""
    import jax

    from jaxrec import sharding, trainer
    from jaxrec.config import load_config
    from jaxrec.step import compile_train_step

    for shards in case.get("shards", (1, 2, 4, 8)):
        if shards > len(jax.devices()):
            continue
        cfg = load_config(None, [*case["set"], f"mesh.model={shards}", "mesh.data=-1"])
        run = trainer.prepare(cfg)
        rows = run.split.num_items
        catalogue = [x for x in jax.tree.leaves(run.state) if x.ndim and x.shape[0] == rows]
        # Tables and their optimizer slots carry the `items` axis (→ `model`); the sampler's
        # [I] popularity arrays are replicated by design and reported apart.
        leaves = [x for x in catalogue if x.sharding.spec and x.sharding.spec[0] == "model"]
        replicated = sum(x.nbytes for x in catalogue) - sum(x.nbytes for x in leaves)
        total = sum(x.nbytes for x in leaves)
        per_device = max(
            sum(s.data.nbytes for x in leaves for s in x.addressable_shards if s.device == d)
            for d in run.mesh.devices.flat
        )
        it = iter(run.task.dataset(0, 1))
        b = next(it)
        b.pop("_epoch"), b.pop("_last")
        batch = sharding.shard_batch(b, run.mesh, run.task.batch_axis)
        step = compile_train_step(run.task.train_step, run.mesh, run.shardings, cfg.train.nonfinite)
        compiled = step.compile(run.state, batch, jax.random.key(0))
        mem = compiled.memory_analysis()
        p = {"shards": shards, "devices": len(jax.devices())}
        sizes = {"ideal": total / shards, "total": total, "replicated_item_arrays": replicated}
        add("table_bytes_per_device", per_device, "B", {**p, **sizes})
        if mem is not None:
            add("step_argument_bytes_per_device", mem.argument_size_in_bytes, "B", p)
            add("step_temp_bytes_per_device", mem.temp_size_in_bytes, "B", p)
