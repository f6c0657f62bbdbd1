"""One benchmark case, measured in this process → records.

A train case builds the sharded state and the compiled step exactly as `jaxrec train` does
(`trainer.prepare`, `step.compile_train_step`: the non-finite guard, shardings, donation and
mesh). The first call is timed apart (compile time, with `block_until_ready`); `warmup`
calls follow; then `repeats` × `calls` compiled calls, each stopped with
`block_until_ready`, the host batches prepared beforehand so that the clock sees the device
step. A case with `repeat_seconds` runs fewer calls per repeat where the warm-up calls' mean
says `calls` of them would take longer (at least `min_calls`; the number is in each
record's params). A call runs `train.steps_per_call` mini-batches; latencies are reported
per mini-batch (call time / T). Throughput is the median over repeats, with min and max in
`spread`.

Each train case reads XLA's cost analysis of its compiled step (`costs.step_cost`) and
divides by the median call time: `achieved_flops`, `achieved_bandwidth`. A `train` case
then measures full-ranking evaluation over every test user (after a warm-up over one chunk
of each input shape, which compiles them all) and the latency of the model exported with
`jaxrec export` and loaded with `jaxrec.load_scorer`. The `machine` case measures the
machine's peak float32 matmul rate and memory bandwidth, the denominators of the report's
utilisation columns.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from jaxrec.bench.costs import inner_loops, step_cost
from jaxrec.bench.records import PHASES, Recorder, add_peak_memory, context, percentile


def run_case(case: dict) -> list[dict]:
    """Measure one (benchmark, model, config) in this process → records."""
    if case["benchmark"] == "machine":
        return machine_case(case)
    from jaxrec import trainer
    from jaxrec.bench.serving import scorer_case, shard_memory_case
    from jaxrec.config import load_config, to_dict

    cfg = load_config(case["config"], case["set"])
    serving = {"scorer": scorer_case, "embedding-shards": shard_memory_case}.get(case["benchmark"])
    t = time.perf_counter()
    run = None if serving else trainer.prepare(cfg)
    if run is not None:
        PHASES["prepare"] = time.perf_counter() - t
    num_items = cfg.data.synthetic.num_items if run is None else run.split.num_items
    params = {
        "batch_size": cfg.train.batch_size,
        "steps_per_call": cfg.train.steps_per_call,
        "num_items": num_items,
        **case.get("params", {}),
    }
    ctx = context(to_dict(cfg))
    add = Recorder(case["benchmark"], cfg.model.name, cfg.data.source, params, ctx)
    if serving is not None:
        serving(case, add)
    else:
        state = _train_records(run, case, add)
        if case["benchmark"] == "train":
            _eval_and_scorer(run, state.params, add, case)
    add_peak_memory(add)
    return add.records


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
    """The machine's own peak: float32 matmul FLOP/s (n×n, n = 2048 on CPU, 8192 on
    accelerators; the best of the repeats) and memory bandwidth (`y = 2x + 1` over 256 MiB:
    one read and one write per element) → records."""
    import jax
    import jax.numpy as jnp

    add = Recorder("machine", "-", "-", {}, context(None))
    n = 2048 if jax.default_backend() == "cpu" else 8192
    x = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    best, times = _best_time(jax.jit(lambda a: a @ a), x, repeats=case["repeats"] + 2)
    flops = 2 * n**3
    add(
        "machine_matmul_flops",
        flops / best,
        "FLOP/s",
        {"n": n, "dtype": "float32"},
        spread=[flops / max(times), flops / min(times)],
    )
    m = 64 * 2**20  # 256 MiB of float32
    # In place (donated), as a train step updates its state: a fresh output would time the
    # kernel's page faults rather than the memory.
    fill = jax.jit(lambda a: 2 * a + 1, donate_argnums=0)
    y = [jnp.ones((m,), jnp.float32)]

    def in_place(_):
        y[0] = fill(y[0])
        return y[0]

    best, times = _best_time(in_place, None, repeats=case["repeats"] + 2)
    moved = 2 * 4 * m
    add(
        "machine_memory_bandwidth",
        moved / best,
        "B/s",
        {"bytes_moved": moved},
        spread=[moved / max(times), moved / min(times)],
    )
    return add.records


class _Steps:
    """The run's compiled step, one executable per batch shape, each compiled and run once
    before the clock starts (a first run is slow; NextItNet's length buckets give several
    widths). `state` advances with every call; `compiles` holds the seconds of every
    compile after the first shape's."""

    def __init__(self, run, step, key):
        self.run, self.step, self.key = run, step, key
        self.state = run.state
        self.by_shape: dict[tuple, object] = {}
        self.compiles: list[float] = []
        self.iterator = iter(run.task.dataset(0, 1))

    def batch(self) -> dict:
        from jaxrec import sharding

        b = next(self.iterator, None)
        if b is None:
            raise RuntimeError("the data ran out: raise train.epochs for this benchmark")
        b.pop("_epoch"), b.pop("_last")
        return sharding.shard_batch(b, self.run.mesh, self.run.task.batch_axis)

    def compiled_for(self, b: dict) -> tuple:
        """The shape key of batch b, its executable compiled and run once if new."""
        import jax

        k = tuple((name, v.shape) for name, v in sorted(b.items()))
        if k not in self.by_shape:
            t = time.perf_counter()
            self.by_shape[k] = self.step.compile(self.state, b, self.key)
            self.compiles.append(time.perf_counter() - t)
            self.state, _ = self.by_shape[k](self.state, b, self.key)
            jax.block_until_ready(self.state)
        return k

    def call(self, k: tuple, b: dict) -> tuple[float, dict]:
        """One timed call of the executable for shape `k` → (seconds, metrics)."""
        import jax

        t = time.perf_counter()
        self.state, metrics = self.by_shape[k](self.state, b, self.key)
        jax.block_until_ready(self.state)
        return time.perf_counter() - t, metrics


def _train_records(run, case: dict, add):
    """Compile, warm-up and timed-call records of the run's train step → the final state."""
    import jax

    from jaxrec.step import compile_train_step

    tcfg = run.cfg.train
    step = compile_train_step(run.task.train_step, run.mesh, run.shardings, tcfg.nonfinite)
    steps = _Steps(run, step, jax.random.key(0))
    t = time.perf_counter()
    steps.compiled_for(steps.batch())
    add("compile_time", time.perf_counter() - t, "s")
    PHASES["compile"] = time.perf_counter() - t
    steps.compiles.clear()
    t = time.perf_counter()
    warm = []
    for _ in range(case["warmup"]):
        b = steps.batch()
        warm.append(steps.call(steps.compiled_for(b), b)[0])
    PHASES["warmup"] = time.perf_counter() - t
    calls = _calls_per_repeat(case, warm)
    add.params["calls"] = calls
    T = tcfg.steps_per_call if run.task.batch_axis == 1 else 1
    t = time.perf_counter()
    timed = _timed_repeats(steps, case["repeats"], calls, T)
    PHASES["timed"] = time.perf_counter() - t
    _throughput_records(run, add, timed)
    if steps.compiles:  # further batch shapes, compiled (and run once) outside the timed calls
        add("compile_time_other_shapes", sum(steps.compiles), "s", {"shapes": len(steps.compiles)})
    _utilisation_records(steps, add, timed, T)
    return steps.state


def _calls_per_repeat(case: dict, warm: list[float]) -> int:
    """`calls`, or fewer for slow steps, so that a repeat lasts about `repeat_seconds`
    (timeit's autorange, capped) but never under `min_calls`."""
    calls = case["calls"]
    if case.get("repeat_seconds") and warm:
        fit = math.ceil(case["repeat_seconds"] / max(statistics.mean(warm), 1e-9))
        calls = max(case.get("min_calls", 1), min(calls, fit))
    return calls


def _timed_repeats(steps: _Steps, repeats: int, calls: int, T: int) -> dict:
    """`repeats` × `calls` timed calls on batches prepared (and compiled for) beforehand →
    {throughputs, steps_per_s, latencies (per mini-batch), shapes (of the timed calls)}."""
    out = {"throughputs": [], "steps_per_s": [], "latencies": [], "shapes": []}
    for _ in range(repeats):
        prepared = [steps.batch() for _ in range(calls)]
        shapes = [steps.compiled_for(b) for b in prepared]
        examples, t_all = 0, time.perf_counter()
        for k, b in zip(shapes, prepared, strict=True):
            seconds, metrics = steps.call(k, b)
            out["latencies"].append(seconds / T)
            examples += int(metrics["examples"])
        seconds = time.perf_counter() - t_all
        out["throughputs"].append(examples / seconds)
        out["steps_per_s"].append(calls * T / seconds)
        out["shapes"] += shapes
    return out


def _throughput_records(run, add, timed: dict) -> None:
    rates, steps = timed["throughputs"], timed["steps_per_s"]
    add("train_throughput", statistics.median(rates), "examples/s", spread=(min(rates), max(rates)))
    add("train_steps", statistics.median(steps), "steps/s", spread=(min(steps), max(steps)))
    n = run.task.examples_per_epoch
    if n:  # the common unit with peers whose examples differ
        add(
            "epoch_time",
            n / statistics.median(rates),
            "s",
            {"examples_per_epoch": n, "extrapolated": True},
        )
    add("step_time_p50", 1e3 * percentile(timed["latencies"], 50), "ms")
    add("step_time_p99", 1e3 * percentile(timed["latencies"], 99), "ms")


def _utilisation_records(steps: _Steps, add, timed: dict, T: int) -> None:
    """FLOP/s and bytes/s the timed calls achieved, from XLA's cost analysis. Mixed shapes:
    the timed calls' mean work over their mean time (one shape: the median time)."""
    cost = {k: step_cost(e, T) for k, e in steps.by_shape.items()}
    work = [cost[k] for k in timed["shapes"]]
    flops = None if any(f is None for f, _ in work) else statistics.mean(f for f, _ in work)
    nbytes = None if any(n is None for _, n in work) else statistics.mean(n for _, n in work)
    latencies = timed["latencies"]
    one_shape = len(cost) == 1
    call_s = T * (percentile(latencies, 50) if one_shape else statistics.mean(latencies))
    loops = max(inner_loops(e, T) for e in steps.by_shape.values())
    if flops:
        add(
            "achieved_flops",
            flops / call_s,
            "FLOP/s",
            {"flops_per_call": flops, "inner_loops": loops},
        )
    if nbytes:
        add(
            "achieved_bandwidth",
            nbytes / call_s,
            "B/s",
            {"bytes_per_call": nbytes, "inner_loops": loops},
        )


def _eval_and_scorer(run, params, add, case) -> None:
    """Full-ranking evaluation throughput over every test user (as RecBole's validation
    pass), then the exported scorer's latency at 1 and 64 requests."""
    from jaxrec import trainer

    t = time.perf_counter()
    if run.task.evaluate is None:
        # A warm-up over one chunk of each input shape compiles what the timed pass runs;
        # its compile time is its wall time less what those chunks take in the timed pass.
        first = trainer.evaluate_params(run, params, "test", ("full",), one_chunk_per_shape=True)
        (second,) = trainer.evaluate_params(run, params, "test", ("full",))
        add(
            "eval_throughput",
            second["users_per_second"],
            "users/s",
            {"protocol": "full", "users": second["num_users"]},
        )
        run_s = first[0]["num_users"] / second["users_per_second"]
        add("eval_compile_time", max(first[0]["seconds"] - run_s, 0.0), "s")
        flops = _eval_flops(run, params)
        if flops:
            add("eval_flops", flops, "FLOP", {"users": second["num_users"]})
    PHASES["eval"] = time.perf_counter() - t
    t = time.perf_counter()
    _scorer_latency(run, params, add, case["calls"])
    PHASES["scorer"] = time.perf_counter() - t


def _scorer_latency(run, params, add, calls: int) -> None:
    import numpy as np

    from jaxrec.serving.export import export_run
    from jaxrec.serving.scorer import load_scorer

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
            for _ in range(calls):
                t = time.perf_counter()
                scorer.recommend(inputs, 10, users=raw_users)
                times.append(time.perf_counter() - t)
            for q in (50, 99):
                add(f"scorer_latency_p{q}", 1e3 * percentile(times, q), "ms", {"requests": b})


def _eval_flops(run, params) -> float | None:
    """The scorer's FLOPs over one full-ranking pass of the test users: XLA's cost analysis
    of `task.score` lowered once per input shape of the pass (`evaluation.input_shapes`),
    times its chunks. A lower bound: a loop body counts once (GRU4Rec's scan over the
    history), and the ranking after the scores (compares, not FLOPs) is left out."""
    import jax
    import jax.numpy as jnp

    from jaxrec import evaluation, trainer

    width = trainer.history_width(run)
    shapes = evaluation.input_shapes(
        run.split, "test", chunk_size=run.cfg.eval.chunk_size, max_history=width
    )
    score, total = jax.jit(run.task.score), 0.0
    with jax.set_mesh(run.mesh):
        for (b, width), chunks in shapes.items():
            b += -b % run.mesh.shape["data"]  # trainer.score_fn pads to the data axis
            args = (
                jax.ShapeDtypeStruct((b,), jnp.int32),
                jax.ShapeDtypeStruct((b, width), jnp.int32),
                jax.ShapeDtypeStruct((b, width), jnp.bool_),
            )
            flops, _ = step_cost(score.lower(params, *args), 1)
            if flops is None:
                return None
            total += chunks * flops
    return total


def report_case(case: dict) -> str:
    """What a case process hands back: JSON {records, phases (seconds by phase)}."""
    records = run_case(case)
    phases = {k: round(v, 1) for k, v in PHASES.items()}
    return json.dumps({"records": records, "phases": phases}, default=str)
