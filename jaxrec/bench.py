"""`jaxrec bench`: training throughput, step latency, compile time, evaluation throughput,
memory and scorer latency, measured the same way every time, as JSON records.

    jaxrec bench --suite quick --out bench/            # or: python -m benchmarks --suite quick

Method. Each case runs in its own process, forked from the suite's (which has imported JAX
and jaxrec but started no backend: each case initialises and compiles from scratch) or, where
it cannot fork, a fresh `python -m jaxrec.bench --case`. It builds the sharded state and the
compiled step exactly as `jaxrec train` does; the first call is timed apart (compile time,
with `block_until_ready`); `warmup` calls follow; then `repeats` × `calls` compiled calls,
each stopped with `block_until_ready`, the host batches prepared beforehand so the clock sees
the device step. A suite with `repeat_seconds` runs fewer calls per repeat where the warm-up
calls' mean says `calls` of them would take longer (at least `min_calls`; the number is in
each record's params). A call runs `train.steps_per_call` mini-batches; latencies are
reported per mini-batch (call time / T). Throughput is the median over repeats, with min and
max in `spread`. Evaluation throughput: a full-ranking pass over every test user, after a
warm-up over one chunk of each input shape (it compiles them all). Scorer latency: the model
exported with `jaxrec export`, loaded with `jaxrec.load_scorer`, called `calls` times per
batch size after a warm-up call. Peak host memory is the case process's max RSS (a forked
child counts the library pages it touches, not those it inherited untouched: 40–120 MiB
less than a fresh process, 2026-12-02); device memory comes from `device.memory_stats()`
where the backend reports it (GPU/TPU).

Against the machine's limit. The `machine` case measures, in the same suite run, the peak
float32 matmul rate (n×n, n = 2048 on CPU, 8192 on accelerators; the best of the repeats)
and the memory bandwidth (`y = 2x + 1` over 256 MiB: one read and one write per element).
Each train case reads XLA's cost analysis of its compiled step (FLOPs and bytes accessed
per call) and divides by the median call time: `achieved_flops`, `achieved_bandwidth`;
the report shows them as fractions of the machine's figures. XLA counts a loop body once,
so the scanned `steps_per_call` is multiplied back in; loops inside a step (the GANs'
inner G/D updates) are counted once, which makes their fractions lower bounds. The
evaluation pass's scorer FLOPs (`eval_flops`: the score function lowered once per input
shape of the pass) give, with the peak, each side-by-side ratio's ceiling: the ratio to the
peer if jaxrec ran its counted FLOPs at the machine's matmul rate.

Peers (`--peers recbole`) run right after jaxrec's case of the same model, so that each
ratio compares two runs minutes apart on this kind of shared machine.

Records (`DIR/results.json`): {system, benchmark, model, dataset, metric, value, unit,
params, context}; `DIR/results.md` is the table; `DIR/*.png` the plots (with matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxrec.errors import ConfigError, JaxrecError

# The suites: (benchmark, model, config file relative to the repo's configs/, overrides).
_SCALE = [
    "data.synthetic.num_users=2000",
    "data.synthetic.mean_length=30",
    "model.gru4rec.layers=[64]",
    "loss.n_sample=512",
    "train.batch_size=256",
    "train.steps_per_call=8",
]
_SCORER = ["model.gru4rec.layers=[64]", "data.synthetic.num_users=300",
           "data.synthetic.mean_length=20", "eval.max_history=50"]  # fmt: skip


def _scale(sizes):
    return [("embedding-scale", "gru4rec", None,
             [*_SCALE, f"data.synthetic.num_items={n}", f"optim.sparse={s}"])
            for n in sizes for s in ("true", "false")]  # fmt: skip


def _serving(sizes, shard_items=1_000_000):
    return [
        ("scorer", "gru4rec", None, [*_SCORER, f"data.synthetic.num_items={n}"]) for n in sizes
    ] + [  # fmt: skip
        (
            "embedding-shards",
            "gru4rec",
            None,
            [*_SCALE, f"data.synthetic.num_items={shard_items}", "optim.sparse=true"],
        )  # fmt: skip
    ]


_TRAIN = [
    ("train", "gru4rec", "gru4rec_games.yaml", []),
    ("train", "caser", "caser_games.yaml", []),
    ("train", "nextitnet", "nextitnet_games.yaml", []),
    ("train", "multvae", "multvae_ml1m.yaml", []),
    ("train", "multdae", "multdae_ml1m.yaml", []),
    ("train", "cdae", "cdae_ml1m.yaml", []),
    ("train", "cfgan", "cfgan_ml100k.yaml", []),
    ("train", "irgan", "irgan_ml100k.yaml", []),
]
# Overrides that put any config on the synthetic data (also catalogue_scaling.py). The
# family-scale cases: each family's own config on it at a catalogue far beyond its real
# data set's (training only): the sequential models' sampled losses and row-wise updates
# should keep the step flat in the catalogue, the autoencoders' and GANs' rows should not.
SYNTHETIC_DATA = ["data.source=synthetic", "data.format=null", "data.columns=null",
              "data.min_rating=null", "data.valid_source=null", "data.test_source=null",
              "data.test_input=train_valid", "data.split=leave_one_out",
              "data.synthetic.num_users=5000", "data.synthetic.mean_length=30"]  # fmt: skip


def _family_scale(sequential: int, rows: int):
    big = [("caser", "caser_games.yaml", sequential),
           ("nextitnet", "nextitnet_games.yaml", sequential),
           ("multvae", "multvae_ml1m.yaml", rows), ("cdae", "cdae_ml1m.yaml", rows),
           ("cfgan", "cfgan_ml100k.yaml", rows), ("irgan", "irgan_ml100k.yaml", rows)]  # fmt: skip
    return [("synthetic-scale", model, config, [*SYNTHETIC_DATA, f"data.synthetic.num_items={n}"])
            for model, config, n in big]  # fmt: skip


_MACHINE = [("machine", "-", None, [])]
SUITES = {
    # Under 5 minutes on 2 CPU cores: fewer calls (fewer still where a call takes over a
    # second), the catalogue sweep's ends, one scorer size, shard memory at 100K items on 1
    # and 8 shards. Evaluation reads every test user, as RecBole's validation pass does: a
    # 2,048-user sample put the longest histories into one of few chunks, so that GRU4Rec's
    # users/s was 0.6x its whole-set figure (2026-11-29).
    "quick": {"calls": 5, "repeats": 3, "warmup": 2, "repeat_seconds": 2.0, "min_calls": 2,
              "shards": (1, 8), "cases": _MACHINE + _TRAIN + _scale((10_000, 1_000_000))
              + _serving((10_000,), shard_items=100_000)},
    "full": {"calls": 50, "repeats": 5, "cases": _MACHINE + _TRAIN
             + _family_scale(1_000_000, 20_000)
             + _scale((10_000, 100_000, 1_000_000, 10_000_000))
             + _serving((10_000, 100_000, 1_000_000))},
    "family-scale": {"calls": 10, "repeats": 3, "cases": _MACHINE
                     + _family_scale(1_000_000, 20_000)},
    "embedding-scale": {"calls": 20, "repeats": 3, "cases": _MACHINE
                        + _scale((10_000, 100_000, 1_000_000, 10_000_000))
                        + _serving(())},
    "scorer": {"calls": 30, "repeats": 1, "cases": _serving((10_000, 100_000, 1_000_000))[:-1]},
}  # fmt: skip
# Cases that need several devices run on 8 fake CPU devices (memory accounting, not speed).
_CPU_DEVICES = {"embedding-shards": 8}


def context(cfg_dict: dict | None = None) -> dict:
    """Where a number comes from: hardware, device kind and count, versions, commit, config."""
    import jax

    from jaxrec import host_memory

    commit = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).parent,
        ).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        pass
    devices = jax.devices()
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_avg_1min": os.getloadavg()[0],
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "jaxlib": __import__("jaxlib").version.__version__,
        "python": platform.python_version(),
        "commit": commit,
        # glibc malloc keeping freed memory (jaxrec.host_memory), or the system default
        "host_malloc": host_memory.state(),
        "config": cfg_dict,
    }


# Where this process's case spent its wall time (seconds by phase), reported beside its
# records so that the suite's log shows what a case costs.
PHASES: dict[str, float] = {}


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def _peak_memory_records(add) -> None:
    add("peak_memory", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB",
        {"memory": "host_rss"})  # fmt: skip
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        add("peak_memory", stats["peak_bytes_in_use"] / 2**20, "MiB", {"memory": "device"})


def _best_time(fn, *args, repeats: int) -> tuple[float, list[float]]:
    import jax

    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times), times


def machine_case(case: dict) -> list[dict]:
    """The machine's own peak: float32 matmul FLOP/s and memory bandwidth → records."""
    import jax
    import jax.numpy as jnp

    n = 2048 if jax.default_backend() == "cpu" else 8192
    x = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    best, times = _best_time(jax.jit(lambda a: a @ a), x, repeats=case["repeats"] + 2)
    rec = {"system": "jaxrec", "benchmark": "machine", "model": "-", "dataset": "-",
           "context": context(None)}  # fmt: skip
    out = [{**rec, "metric": "machine_matmul_flops", "value": 2 * n**3 / best, "unit": "FLOP/s",
            "params": {"n": n, "dtype": "float32"},
            "spread": [2 * n**3 / max(times), 2 * n**3 / min(times)]}]  # fmt: skip
    m = 64 * 2**20  # 256 MiB of float32
    # In place (donated), as a train step updates its state: a fresh 256 MiB output would
    # time the kernel's page faults (measured 1.9 GB/s vs 20 GB/s donated on a 2-core CPU).
    fill = jax.jit(lambda a: 2 * a + 1, donate_argnums=0)
    y = [jnp.ones((m,), jnp.float32)]

    def in_place(_):
        y[0] = fill(y[0])
        return y[0]

    best, times = _best_time(in_place, None, repeats=case["repeats"] + 2)
    moved = 2 * 4 * m
    out.append({**rec, "metric": "machine_memory_bandwidth", "value": moved / best, "unit": "B/s",
                "params": {"bytes_moved": moved}, "spread": [moved / max(times), moved / min(times)]})  # fmt: skip
    return out


_NAME = re.compile(r"%([\w.\-]+)")
_WHILE_BODY = re.compile(r"body=%([\w.\-]+)")


def _step_cost(compiled, calls_per_loop: int) -> tuple[float | None, float | None]:
    """(FLOPs, bytes accessed) of one compiled call from XLA's cost analysis, or None."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    if not cost:
        return None, None
    flops, nbytes = cost.get("flops"), cost.get("bytes accessed")
    return (None if flops is None else flops * calls_per_loop,
            None if nbytes is None else nbytes * calls_per_loop)  # fmt: skip


def _inner_loops(compiled, calls_per_loop: int) -> int:
    """Loops with matrix products inside the compiled call, besides the scan over
    `calls_per_loop` steps.

    XLA's cost analysis counts a loop body once whatever its trip count (a scan of ten
    256×256 products costs as much as one), so a step that scans sub-batch updates (CFGAN,
    IRGAN's D and G passes) is undercounted: its figures are lower bounds. Loops without a
    product (the random-bit generator's rounds, sorted searches) barely count and are left
    out.
    """
    bodies, calls, has_dot = [], {}, {}
    name = None
    for line in compiled.as_text().splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            name = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
            calls[name], has_dot[name] = set(), False
        elif name is not None and line.strip():
            has_dot[name] |= (" dot(" in line or " convolution(" in line
                              or (" custom-call(" in line and "matmul" in line))  # fmt: skip
            calls[name].update(_NAME.findall(line))  # operands too; only computations count
            if " while(" in line:
                bodies += _WHILE_BODY.findall(line)

    def with_dot(comp, seen=()):
        if has_dot.get(comp):
            return True
        inner = calls.get(comp, set()) & calls.keys()
        return any(with_dot(c, (*seen, comp)) for c in inner if c not in seen)

    loops = sum(with_dot(b) for b in bodies)
    return max(0, loops - (1 if calls_per_loop > 1 else 0))


def run_case(case: dict) -> list[dict]:
    """Measure one (benchmark, model, config) in this process → records."""
    if case["benchmark"] == "machine":
        return machine_case(case)
    import jax
    import numpy as np

    from jaxrec import host_memory, sharding, trainer
    from jaxrec.bench_serving import scorer_case, shard_memory_case
    from jaxrec.config import load_config, to_dict

    cfg = load_config(case["config"], case["set"])
    host_memory.apply_setting(cfg.train.host_malloc)  # before this case's first computation
    serving = {"scorer": scorer_case, "embedding-shards": shard_memory_case}.get(case["benchmark"])
    t = time.perf_counter()
    run = None if serving else trainer.prepare(cfg)
    if run is not None:
        PHASES["prepare"] = time.perf_counter() - t
    ctx = context(to_dict(cfg))
    num_items = cfg.data.synthetic.num_items if run is None else run.split.num_items
    base_params = {"batch_size": cfg.train.batch_size, "steps_per_call": cfg.train.steps_per_call,
                   "num_items": num_items, **case.get("params", {})}  # fmt: skip
    records: list[dict] = []

    def add(metric, value, unit, params=None, spread=None):
        rec = {"system": "jaxrec", "benchmark": case["benchmark"], "model": cfg.model.name,
               "dataset": cfg.data.source, "metric": metric, "value": float(value),
               "unit": unit, "params": {**base_params, **(params or {})}, "context": ctx}  # fmt: skip
        if spread is not None:
            rec["spread"] = [float(x) for x in spread]
        records.append(rec)

    if serving is not None:
        serving(case, add)
        _peak_memory_records(add)
        return records
    it = iter(run.task.dataset(0, 1))
    step = jax.jit(run.task.train_step, donate_argnums=0)
    key = jax.random.key(0)

    def batch():
        b = next(it, None)
        if b is None:
            raise RuntimeError("the data ran out: raise train.epochs for this benchmark")
        b.pop("_epoch"), b.pop("_last")
        return sharding.shard_batch(b, run.mesh, run.task.batch_axis)

    state = run.state
    # One executable per batch shape (NextItNet's length buckets give several widths), each
    # compiled and run once before the clock starts: a first run is slow (with buckets the
    # step p99 was 117 ms against 29 ms once every shape had run, NextItNet bench, 2-core
    # CPU). The first shape's compile and run is `compile_time`, the others' compiles
    # `compile_time_other_shapes`.
    executables, other_compiles = {}, []

    def shape_of(b):
        return tuple((k, v.shape) for k, v in sorted(b.items()))

    def compiled_for(b):
        """The shape key of batch b, its executable compiled and run once if new."""
        nonlocal state
        k = shape_of(b)
        if k not in executables:
            t = time.perf_counter()
            executables[k] = step.lower(state, b, key).compile()
            other_compiles.append(time.perf_counter() - t)
            state, _ = executables[k](state, b, key)
            jax.block_until_ready(state)
        return k

    t = time.perf_counter()
    compiled_for(batch())
    add("compile_time", time.perf_counter() - t, "s")
    PHASES["compile"] = time.perf_counter() - t
    other_compiles.clear()

    t, warm = time.perf_counter(), []
    for _ in range(case["warmup"]):
        b = batch()
        k = compiled_for(b)
        t_call = time.perf_counter()
        state, m = executables[k](state, b, key)
        jax.block_until_ready(state)
        warm.append(time.perf_counter() - t_call)
    PHASES["warmup"] = time.perf_counter() - t
    # Calls per repeat: `calls`, or fewer for slow steps, so that a repeat lasts about
    # `repeat_seconds` (timeit's autorange, capped) but never under `min_calls`.
    calls = case["calls"]
    if case.get("repeat_seconds") and warm:
        fit = math.ceil(case["repeat_seconds"] / max(statistics.mean(warm), 1e-9))
        calls = max(case.get("min_calls", 1), min(calls, fit))
    base_params["calls"] = calls
    T = cfg.train.steps_per_call if run.task.batch_axis == 1 else 1
    throughputs, steps, latencies, timed = [], [], [], []
    t_timed = time.perf_counter()
    for _ in range(case["repeats"]):
        prepared = [batch() for _ in range(calls)]
        shapes = [compiled_for(b) for b in prepared]
        fns = [executables[k] for k in shapes]
        examples = 0
        t_all = time.perf_counter()
        timed += shapes
        for compiled, b in zip(fns, prepared, strict=True):
            t = time.perf_counter()
            state, m = compiled(state, b, key)
            jax.block_until_ready(state)
            latencies.append((time.perf_counter() - t) / T)
            examples += int(m["examples"])
        seconds = time.perf_counter() - t_all
        throughputs.append(examples / seconds)
        steps.append(calls * T / seconds)
    PHASES["timed"] = time.perf_counter() - t_timed
    add("train_throughput", statistics.median(throughputs), "examples/s",
        spread=(min(throughputs), max(throughputs)))  # fmt: skip
    add("train_steps", statistics.median(steps), "steps/s", spread=(min(steps), max(steps)))
    if run.task.examples_per_epoch:  # the common unit with peers whose examples differ
        add("epoch_time", run.task.examples_per_epoch / statistics.median(throughputs), "s",
            {"examples_per_epoch": run.task.examples_per_epoch, "extrapolated": True})  # fmt: skip
    add("step_time_p50", 1e3 * _percentile(latencies, 50), "ms")
    add("step_time_p99", 1e3 * _percentile(latencies, 99), "ms")
    if other_compiles:  # further batch shapes, compiled (and run once) outside the timed calls
        add("compile_time_other_shapes", sum(other_compiles), "s",
            {"shapes": len(other_compiles)})  # fmt: skip
    # Mixed shapes: the timed calls' mean work over their mean time (one shape: median time).
    cost = {k: _step_cost(e, T) for k, e in executables.items()}
    work = [cost[k] for k in timed]
    flops = None if any(f is None for f, _ in work) else statistics.mean(f for f, _ in work)
    nbytes = None if any(n is None for _, n in work) else statistics.mean(n for _, n in work)
    call_s = T * (statistics.mean(latencies) if len(cost) > 1 else _percentile(latencies, 50))
    loops = max(_inner_loops(e, T) for e in executables.values())
    if flops:
        add("achieved_flops", flops / call_s, "FLOP/s",
            {"flops_per_call": flops, "inner_loops": loops})  # fmt: skip
    if nbytes:
        add("achieved_bandwidth", nbytes / call_s, "B/s",
            {"bytes_per_call": nbytes, "inner_loops": loops})  # fmt: skip
    if case["benchmark"] == "train":
        _eval_and_scorer(run, state.params, add, case, np)
    _peak_memory_records(add)
    return records


def _eval_and_scorer(run, params, add, case, np) -> None:
    from jaxrec import trainer

    t = time.perf_counter()
    if run.task.evaluate is None:
        # A warm-up over one chunk of each input shape compiles what the timed pass runs;
        # its compile time is its wall time less what those chunks take in the timed pass.
        first = trainer.evaluate_params(run, params, "test", ("full",), one_chunk_per_shape=True)
        second = trainer.evaluate_params(run, params, "test", ("full",))  # every test user,
        add("eval_throughput", second[0]["users_per_second"], "users/s",  # as RecBole's pass
            {"protocol": "full", "users": second[0]["num_users"]})  # fmt: skip
        run_s = first[0]["num_users"] / second[0]["users_per_second"]
        add("eval_compile_time", max(first[0]["seconds"] - run_s, 0.0), "s")
        flops = _eval_flops(run, params)
        if flops:
            add("eval_flops", flops, "FLOP", {"users": second[0]["num_users"]})
    PHASES["eval"] = time.perf_counter() - t
    from jaxrec.export import export_run
    from jaxrec.scorer import load_scorer

    t_scorer = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        export_run(run, params, Path(tmp) / "scorer", max_k=100)
        scorer = load_scorer(Path(tmp) / "scorer")
        hist, _ = run.split.stage("test")
        users = np.flatnonzero(hist.lengths > 0)
        vocab = run.data.item_vocab
        for b in (1, 64):
            chosen = users[:b]
            inputs = [vocab[hist.row(u)].tolist() for u in chosen]
            raw_users = run.data.user_vocab[chosen].tolist()
            scorer.recommend(inputs, 10, users=raw_users)  # compile this bucket
            times = []
            for _ in range(case["calls"]):
                t = time.perf_counter()
                scorer.recommend(inputs, 10, users=raw_users)
                times.append(time.perf_counter() - t)
            for q in (50, 99):
                add(f"scorer_latency_p{q}", 1e3 * _percentile(times, q), "ms", {"requests": b})
    PHASES["scorer"] = time.perf_counter() - t_scorer


def _eval_flops(run, params) -> float | None:
    """The scorer's FLOPs over one full-ranking pass of the test users: XLA's cost analysis
    of `task.score` lowered once per input shape of the pass (`evaluation.input_shapes`),
    times its chunks. A lower bound: a loop body counts once (GRU4Rec's scan over the
    history), and the ranking after the scores (compares, not FLOPs) is left out."""
    import jax
    import jax.numpy as jnp

    from jaxrec import evaluation, trainer

    shapes = evaluation.input_shapes(run.split, "test", chunk_size=run.cfg.eval.chunk_size,
                                     max_history=trainer.history_width(run))  # fmt: skip
    score, total = jax.jit(run.task.score), 0.0
    with jax.set_mesh(run.mesh):
        for (b, width), chunks in shapes.items():
            b += -b % run.mesh.shape["data"]  # trainer.score_fn pads to the data axis
            args = (jax.ShapeDtypeStruct((b,), jnp.int32),
                    jax.ShapeDtypeStruct((b, width), jnp.int32),
                    jax.ShapeDtypeStruct((b, width), jnp.bool_))  # fmt: skip
            flops, _ = _step_cost(score.lower(params, *args), 1)
            if flops is None:
                return None
            total += chunks * flops
    return total


def _report(case: dict) -> str:
    """What a case process hands back: JSON {records, phases (seconds by phase)}."""
    records = run_case(case)
    phases = {k: round(v, 1) for k, v in PHASES.items()}
    return json.dumps({"records": records, "phases": phases}, default=str)


def _case_main(spec: str) -> None:
    print("REPORT " + _report(json.loads(spec)))


def _can_fork() -> bool:
    """Whether cases can fork from this process: POSIX, and no JAX backend started here
    (a child would inherit its threads; a test process has one)."""
    try:
        from jax._src import xla_bridge

        return hasattr(os, "fork") and not xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a JAX without that function: start a process
        return False


def _run_isolated(case: dict, env: dict) -> tuple[list, dict, str]:
    """One case in its own process → (records, phases, error: '' or the output's last lines).

    Forked from this process where `_can_fork`: it has imported JAX and jaxrec once (3.5 s a
    case on the 2-core CPU, 14 cases in the quick suite) but started no backend, so each
    child still initialises, compiles and counts its peak memory on its own. Elsewhere a
    fresh `python -m jaxrec.bench --case`. `env`: variables the case sets before JAX starts.
    """
    if not _can_fork():
        proc = subprocess.run([sys.executable, "-m", "jaxrec.bench", "--case", json.dumps(case)],
                              capture_output=True, text=True, env={**os.environ, **env})  # fmt: skip
        out = [x.removeprefix("REPORT ") for x in proc.stdout.splitlines()
               if x.startswith("REPORT ")]  # fmt: skip
        if proc.returncode or not out:
            return [], {}, " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        got = json.loads(out[-1])
        return got["records"], got["phases"], ""
    import jax  # what every case imports, loaded once before the first fork

    import jaxrec.bench_serving
    import jaxrec.export
    import jaxrec.scorer
    import jaxrec.trainer  # noqa: F401

    read, write = os.pipe()
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush(), sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: reports through the pipe, never returns
            code = 1
            try:
                os.close(read)
                os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
                os.environ.update(env)
                if "JAX_PLATFORMS" in env:  # read at import: set again, before any backend
                    jax.config.update("jax_platforms", env["JAX_PLATFORMS"])
                if "JAX_NUM_CPU_DEVICES" in env:
                    jax.config.update("jax_num_cpu_devices", int(env["JAX_NUM_CPU_DEVICES"]))
                payload = _report(case)
                with os.fdopen(write, "w") as pipe:
                    pipe.write(payload)
                code = 0
            except BaseException:  # reported to the parent through the log
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as pipe:
            payload = pipe.read()  # to EOF before waiting: a large payload cannot block
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code or not payload:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()[-3:]
            return [], {}, " | ".join(lines) or f"exit code {code}"
    got = json.loads(payload)
    return got["records"], got["phases"], ""


def _peers_root(configs_dir: Path) -> Path:
    """The checkout holding benchmarks/peers: jaxrec's own (so a copied configs folder keeps
    its peers), else the folder above `configs_dir`."""
    own = Path(__file__).resolve().parent.parent
    return own if (own / "benchmarks" / "peers").is_dir() else configs_dir.resolve().parent


def _selected(cases: list, only: list[str] | None) -> list:
    """The cases `--only` keeps: its models' and benchmarks', and the machine case."""
    return [c for c in cases if not only or c[0] == "machine" or c[1] in only or c[0] in only]


def _check_configs(suite: str, configs_dir: Path, only: list[str] | None) -> None:
    """Refuse, before any case runs, a run whose cases read config files that `configs_dir`
    lacks (as outside a checkout, where ./configs is not there)."""
    needed = {c[2] for c in _selected(SUITES[suite]["cases"], only) if c[2] is not None}
    missing = sorted(n for n in needed if not (configs_dir / n).is_file())
    if not missing:
        return
    what = "no such directory" if not configs_dir.is_dir() else "missing"
    raise ConfigError(
        f"--configs {configs_dir}: {what}; suite {suite!r} reads {', '.join(missing)} from it: "
        "pass --configs with the jaxrec repository's configs/ folder (or --only other cases)"
    )


def _check_out(out: Path, force: bool) -> None:
    """Refuse an --out that is a file, or a directory with files in it unless `force`."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a directory for the results")
    if not force and out.is_dir() and any(out.iterdir()):
        raise ConfigError(
            f"--out {out} is not empty; choose another --out or pass --force to write into it "
            "(its results.json, results.md and plots are replaced)"
        )


def run_suite(suite: str, out: Path, configs_dir: Path, only: list[str] | None = None,
              peers: list[str] = ()) -> list:  # fmt: skip
    """Run every case of `suite` in its own process, each train case followed by its model's
    run in each peer of `peers` (`recbole`: see `jaxrec.bench_peers`); write results.json,
    results.md, plots. A config file a case reads that is missing is a ConfigError, raised
    before any case runs."""
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    spec = SUITES[suite]
    _check_configs(suite, configs_dir, only)
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    env = dict(os.environ)
    shared = configs_dir.resolve().parent.parent / "shared" / "data"
    if "JAXREC_DATA_DIR" not in env and shared.is_dir():  # the repo's layout: ../shared/data
        env["JAXREC_DATA_DIR"] = str(shared)
    for benchmark, model, config, overrides in _selected(spec["cases"], only):
        path = None if config is None else configs_dir / config
        case = {"benchmark": benchmark, "config": None if path is None else str(path),
                "set": [*overrides, "train.epochs=1000", "train.progress=false"],
                "calls": spec["calls"], "repeats": spec["repeats"],
                "warmup": spec.get("warmup", 3), "repeat_seconds": spec.get("repeat_seconds"),
                "min_calls": spec.get("min_calls", 1), "shards": spec.get("shards", (1, 2, 4, 8)),
                "params": {"update": "sparse" if "optim.sparse=true" in overrides else "dense",
                           "shards": 1} if benchmark == "embedding-scale" else {}}  # fmt: skip
        if config is None:
            case["set"].insert(0, f"model.name={model}")
        if benchmark == "machine":
            case["set"] = []
        label = f"{benchmark}/{model}" + (f" {overrides[-2:]}" if config is None else "")
        case_env = {"JAXREC_DATA_DIR": env["JAXREC_DATA_DIR"]} if "JAXREC_DATA_DIR" in env else {}
        if benchmark in _CPU_DEVICES:
            case_env |= {
                "JAX_PLATFORMS": "cpu",
                "JAX_NUM_CPU_DEVICES": str(_CPU_DEVICES[benchmark]),
            }
        print(f"bench: {label} ...", flush=True)
        t = time.perf_counter()
        got, phases, error = _run_isolated(case, case_env)
        if error:
            skipped.append(f"{label}: failed: {error}")
            print(f"bench: {label} failed", flush=True)
            continue
        records += got
        phases = ", ".join(f"{k} {v:.0f}" for k, v in phases.items())
        print(f"bench: {label} done in {time.perf_counter() - t:.0f} s"
              + (f" ({phases})" if phases else ""), flush=True)  # fmt: skip
        if "recbole" in peers and benchmark == "train":
            # Right after jaxrec's case: the ratio compares two runs minutes apart, not a
            # quarter of an hour (this shared VM's speed drifts by up to 2x over hours).
            from jaxrec.bench_peers import peer_sizes, recbole_records
            from jaxrec.config import load_config

            data_dir = Path(env["JAXREC_DATA_DIR"]) if "JAXREC_DATA_DIR" in env else None
            ctx = {**got[0]["context"], "load_avg_1min": os.getloadavg()[0], "config": None}
            got, why = recbole_records(
                [model], _peers_root(configs_dir), data_dir, spec.get("peer_epochs", 2), ctx,
                {model: peer_sizes(model, load_config(path, overrides))},
            )  # fmt: skip
            records += got
            skipped += [w for w in why if w not in skipped]  # a missing venv: said once
    (out / "results.json").write_text(json.dumps(records, indent=2))
    from jaxrec.bench_report import plots, table

    (out / "results.md").write_text(table(records, skipped))
    plots(records, out)
    return records


def main(argv: list[str] | None = None) -> int:
    """`jaxrec bench` (and `python -m benchmarks`): run a suite → exit status 0; a usage
    error (non-empty --out without --force, missing configs) → one line and status 2."""
    description = " ".join(__doc__.split("\n\n")[0].split())  # the first paragraph, whole
    ap = argparse.ArgumentParser(
        prog="jaxrec bench",
        description=description,
        epilog="example: jaxrec bench --suite quick --out bench/",
    )
    ap.add_argument(
        "--suite", default="quick", choices=list(SUITES), help="which cases to run (default: quick)"
    )
    ap.add_argument(
        "--only",
        nargs="*",
        metavar="NAME",
        help="run only the cases of these models or benchmarks, e.g. --only gru4rec "
        "or --only train scorer (the machine case always runs)",
    )
    ap.add_argument(
        "--out",
        default="bench",
        help="directory for results.json, results.md and plots (default: bench); "
        "it must be empty or new unless --force is given",
    )
    ap.add_argument(
        "--force", action="store_true", help="write into a non-empty --out, replacing its results"
    )
    ap.add_argument(
        "--configs",
        default="configs",
        help="the jaxrec repository's configs/ folder, read by the train and "
        "synthetic-scale cases (default: ./configs)",
    )
    ap.add_argument(
        "--peers",
        nargs="*",
        default=[],
        choices=["recbole"],
        help="also run these peers in this run (RecBole: its own venv, RECBOLE_VENV)",
    )
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, in a subprocess
    args = ap.parse_args(argv)
    if args.case:
        _case_main(args.case)
        return 0
    try:
        _check_out(Path(args.out), args.force)
        run_suite(args.suite, Path(args.out), Path(args.configs), args.only, args.peers)
    except JaxrecError as e:
        print(f"jaxrec bench: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
