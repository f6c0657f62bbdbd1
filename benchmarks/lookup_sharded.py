"""Row-sharded embedding lookup: GSPMD `take` vs jaxrec's shard_map lookup, forward + backward.

    python benchmarks/lookup_sharded.py --devices 8 --data 2 --model 4 --rows 400000

Runs on fake CPU devices (or real ones with --devices 0): a [rows, dim] table row-sharded over
`model`, `batch` ids sharded over `data`; times jit(value_and_grad(sum(lookup(t, ids)²)))
after one warm-up call, `--calls` calls each stopped with block_until_ready, and lists the
collectives in the compiled HLO. Checks that both give the same rows.
"""

from __future__ import annotations

import argparse
import os
import re
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=8, help="fake CPU devices; 0 = real devices")
    ap.add_argument("--data", type=int, default=2)
    ap.add_argument("--model", type=int, default=4)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--calls", type=int, default=10)
    args = ap.parse_args()
    if args.devices:
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    if args.devices:
        jax.config.update("jax_num_cpu_devices", args.devices)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from jaxrec import sharding

    mesh = sharding.make_mesh(args.data, args.model)
    rng = np.random.default_rng(0)
    table = jax.device_put(
        rng.normal(size=(args.rows, args.dim)).astype(np.float32),
        NamedSharding(mesh, PartitionSpec("model", None)),
    )
    ids = jax.device_put(
        rng.integers(0, args.rows, args.batch).astype(np.int32),
        NamedSharding(mesh, PartitionSpec("data")),
    )
    variants = {"gspmd_take": lambda t, i: jnp.take(t, i, axis=0), "shard_map": sharding.lookup}
    out = {}
    with jax.set_mesh(mesh):
        for name, fn in variants.items():
            step = jax.jit(jax.value_and_grad(lambda t, i, fn=fn: jnp.sum(fn(t, i) ** 2)))
            hlo = step.lower(table, ids).compile().as_text()
            collectives = sorted(
                set(
                    re.findall(
                        r"= (\S+\[[^\]]*\])\S* (all-\w+|reduce-scatter|collective-permute)\(", hlo
                    )
                )
            )
            jax.block_until_ready(step(table, ids))
            t = time.perf_counter()
            for _ in range(args.calls):
                res = step(table, ids)
            jax.block_until_ready(res)
            ms = (time.perf_counter() - t) / args.calls * 1e3
            out[name] = jax.jit(fn)(table, ids)
            print(f"{name:11s} {ms:9.1f} ms per forward+backward; collectives {collectives}")
    same = np.array_equal(np.asarray(out["gspmd_take"]), np.asarray(out["shard_map"]))
    print(
        f"same rows: {same}; mesh {dict(mesh.shape)}, table {args.rows}x{args.dim}, ids {args.batch}"
    )


if __name__ == "__main__":
    main()
