"""Turn benchmark records (`jaxrec.bench.records`) into a Markdown table and PNG plots,
with jaxrec beside the peers a run measured (`system` other than jaxrec)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

_TRAIN_COLUMNS = (
    ("compile_time", "compile s", "{:.1f}"),
    ("train_throughput", "examples/s", "{:,.0f}"),
    ("train_steps", "steps/s", "{:,.1f}"),
    ("epoch_time", "epoch s", "{:,.1f}"),
    ("step_time_p50", "step p50 ms", "{:.2f}"),
    ("step_time_p99", "step p99 ms", "{:.2f}"),
    ("eval_throughput", "eval users/s", "{:,.0f}"),
    ("scorer_latency_p50", "scorer p50 ms (1 / 64 req.)", "{:.2f}"),
    ("peak_memory", "peak RSS MiB", "{:,.0f}"),
)


def _key(r: dict) -> tuple:
    p = r["params"]
    return (
        r["system"],
        r["benchmark"],
        r["model"],
        r["dataset"],
        p.get("num_items"),
        p.get("update"),
    )


def table(records: list[dict], skipped: list[str] = ()) -> str:
    """One row per (system, benchmark, model, dataset[, catalogue, update]); the context once."""
    head = ["system", "benchmark", "model", "data", "items", "update"]
    head += [c[1] for c in _TRAIN_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_row(key, metrics) for key, metrics in _rows(records).items()]
    out = ["# jaxrec benchmark results", ""]
    if records:
        c = records[0]["context"]
        out += [
            f"{c['device_count']} × {c['device_kind']} ({c['backend']}), {c['cpus']} CPU cores "
            f"({c['processor']}), jax {c['jax']} / jaxlib {c['jaxlib']}, Python {c['python']}, "
            f"commit {str(c['commit'])[:10]}; 1-min load average at the start "
            f"{c['load_avg_1min']:.1f}.",
            "",
            "Throughput: median of the repeats (min–max in results.json `spread`), compile time "
            "apart, `block_until_ready` before each clock stop. Step latency per mini-batch.",
            "",
        ]
    out += lines
    out += side_by_side(records) + _utilisation(records) + _scorer_table(records)
    out += _shards_table(records)
    if skipped:
        out += ["", "Not measured:", *[f"- {s}" for s in skipped]]
    return "\n".join(out) + "\n"


def _rows(records: list[dict]) -> dict[tuple, dict]:
    """{row key: {metric: record, or the values of a metric with several (scorer p50)}}."""
    rows: dict[tuple, dict] = defaultdict(dict)
    for r in records:
        if r["benchmark"] in _OWN_TABLES:
            continue
        metric = r["metric"]
        if metric == "peak_memory" and r["params"].get("memory") != "host_rss":
            metric = "peak_device_memory"
        if metric.startswith("scorer_latency_p50"):
            rows[_key(r)].setdefault(metric, []).append(r["value"])
        else:
            rows[_key(r)][metric] = r
    return rows


def _row(key: tuple, metrics: dict) -> str:
    system, bench, model, data, items, update = key
    name = Path(str(data)).name or str(data)
    cells = [system, bench, model, name, f"{items:,}" if items else "", update or ""]
    for metric, _, fmt in _TRAIN_COLUMNS:
        v = metrics.get(metric)
        if v is None:
            cells.append("")
        elif isinstance(v, list):
            cells.append(" / ".join(fmt.format(x) for x in v))
        else:
            cells.append(fmt.format(v["value"]))
    return "| " + " | ".join(cells) + " |"


_OWN_TABLES = ("machine", "scorer", "embedding-shards")


def _scorer_table(records: list[dict]) -> list[str]:
    """Scorer latency per catalogue and request count, by path (see jaxrec.bench.serving)."""
    lat: dict[tuple, dict] = defaultdict(dict)
    for r in records:
        if r["benchmark"] == "scorer" and r["metric"].startswith("scorer_latency"):
            p = r["params"]
            lat[(p["num_items"], p["requests"])][(p["path"], r["metric"][-3:])] = r["value"]
    if not lat:
        return []
    out = [
        "",
        "Scorer latency (ms, top-100, GRU4Rec 64 units; p50 unless noted):",
        "",
        "| items | requests | exported p50 | exported p99 | jitted in process | exported ÷ jitted "
        "| recommend() with raw ids | numpy brute force | numpy ÷ exported |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (items, b), v in sorted(lat.items()):
        e, j = v.get(("exported", "p50")), v.get(("jitted", "p50"))
        n, f = v.get(("numpy", "p50")), v.get(("recommend()", "p50"))
        cells = [f"{items:,}", str(b)] + [
            "" if x is None else f"{x:.2f}" for x in (e, v.get(("exported", "p99")), j)
        ]
        cells.append(f"{e / j:.2f}" if e and j else "")
        cells += ["" if x is None else f"{x:.2f}" for x in (f, n)]
        cells.append(f"{n / e:.1f}" if n and e else "")
        out.append("| " + " | ".join(cells) + " |")
    return out


def _shards_table(records: list[dict]) -> list[str]:
    """Per-device bytes of the item tables and optimizer state against total / n."""
    by: dict[int, dict] = defaultdict(dict)
    for r in records:
        if r["benchmark"] == "embedding-shards" and "shards" in r["params"]:
            by[r["params"]["shards"]][r["metric"]] = r
    if not by:
        return []
    items = next(iter(by.values()))["table_bytes_per_device"]["params"]["num_items"]
    out = [
        "",
        "Item tables + optimizer state per device, row-sharded over `model` (GRU4Rec, "
        f"{items:,} items, 8 CPU devices):",
        "",
        "| shards | tables per device (MiB) | ideal total ÷ n (MiB) | ratio | compiled step "
        "arguments per device (MiB) | compiled step temp (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    mib = 2**20
    for n, m in sorted(by.items()):
        t = m["table_bytes_per_device"]
        extra = [m.get("step_argument_bytes_per_device"), m.get("step_temp_bytes_per_device")]
        cells = [
            str(n),
            f"{t['value'] / mib:,.1f}",
            f"{t['params']['ideal'] / mib:,.1f}",
            f"{t['value'] / t['params']['ideal']:.3f}",
        ]
        cells += ["" if x is None else f"{x['value'] / mib:,.1f}" for x in extra]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _utilisation(records: list[dict]) -> list[str]:
    """Per train/scale case: achieved FLOP/s and bytes/s as fractions of the machine's own."""
    limits = {r["metric"]: r["value"] for r in records if r["benchmark"] == "machine"}
    flops, bw = limits.get("machine_matmul_flops"), limits.get("machine_memory_bandwidth")
    if not (flops and bw):
        return []
    out = [
        "",
        f"Machine limits measured in this run: float32 matmul {flops / 1e9:,.1f} GFLOP/s, "
        f"memory bandwidth {bw / 1e9:,.1f} GB/s. Fraction of each reached by the train step "
        "(XLA cost analysis ÷ median call time). XLA counts every operand of a gather or "
        "scatter in full, a whole table for a sparse row update, so its bytes overstate the "
        "traffic of embedding steps: a fraction above 100% marks that count, not the "
        "machine's speed. ≥: the step runs loops with matrix products inside (scanned "
        "sub-batch updates) whose bodies XLA counts once, so its figures are lower "
        "bounds.",
        "",
        "| benchmark | model | items | update | GFLOP/s | of matmul peak | GB/s | of bandwidth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows: dict[tuple, dict] = defaultdict(dict)
    for r in records:
        if r["metric"] in ("achieved_flops", "achieved_bandwidth"):
            rows[_key(r)][r["metric"]] = r["value"]
            rows[_key(r)]["ge"] = "≥ " if r["params"].get("inner_loops") else ""
    for (_, bench, model, _, items, update), m in rows.items():
        f, b, ge = m.get("achieved_flops", 0.0), m.get("achieved_bandwidth", 0.0), m["ge"]
        out.append(
            f"| {bench} | {model} | {f'{items:,}' if items else ''} | {update or ''} | "
            f"{ge}{f / 1e9:,.2f} | {ge}{f / flops:.1%} | {ge}{b / 1e9:,.2f} | "
            f"{ge}{b / bw:.1%} |"
        )
    return out


def throughput_bars(records: list[dict]) -> list[dict]:
    """The train_throughput records the throughput plot draws: jaxrec's only. A peer counts
    other examples (RecBole's sequential models one prefix each), so its examples/s on the
    same axis would mislead; the peer ratio plot compares the two."""
    return [
        r
        for r in records
        if r["benchmark"] == "train"
        and r["metric"] == "train_throughput"
        and r["system"] == "jaxrec"
    ]


def plots(records: list[dict], out: Path) -> list[Path]:
    """PNG plots: training throughput per model, and step time against catalogue size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []  # plots are optional (pip install 'jaxrec[bench]')
    written = []
    train = throughput_bars(records)
    if train:
        # Horizontal bars: "model · data folder" labels stay readable for any number of cases.
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(train) + 1.2))
        labels = [
            f"{r['model']} · {Path(str(r['dataset'])).parent.name.removeprefix('shared:')}"
            for r in train
        ]
        bars = ax.barh(labels[::-1], [r["value"] for r in train][::-1], color="#4c72b0")
        ax.bar_label(bars, fmt="{:,.0f}", padding=3, fontsize=8)
        ax.set_xlabel("training examples / s (linear)")
        ax.margins(x=0.15)
        ax.set_title("jaxrec training throughput")
        fig.tight_layout()
        written.append(out / "train_throughput.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    rows = comparisons(records)
    if rows:
        written.append(_ratio_plot(plt, rows, out / "peer_ratios.png"))
    scale = [
        r for r in records if r["benchmark"] == "embedding-scale" and r["metric"] == "step_time_p50"
    ]
    if scale:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for update in ("sparse", "dense"):
            pts = sorted(
                (r["params"]["num_items"], r["value"])
                for r in scale
                if r["params"].get("update") == update
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=f"{update} update")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("catalogue size (items)")
        ax.set_ylabel("step time p50 (ms)")
        ax.set_title("GRU4Rec step time vs catalogue")
        ax.legend()
        fig.tight_layout()
        written.append(out / "scale_step_time.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _ratio_plot(plt, rows: list[dict], path: Path) -> Path:
    """Speed-up over each peer (training epoch time, evaluation users/s), log scale, with
    each ratio's ceiling marked (`comparisons`)."""
    fig, ax = plt.subplots(figsize=(7.5, 0.7 * len(rows) + 2.0))
    y = list(range(len(rows)))
    bars = (
        ("speedup", "speedup_ceiling", "training (epoch time)", "#4c72b0", -0.2),
        ("eval_ratio", "eval_ceiling", "full-ranking evaluation", "#dd8452", 0.2),
    )
    for key, ceiling, label, color, shift in bars:
        ys = [i + shift for i in y]
        drawn = ax.barh(ys, [r[key] or 0 for r in rows], height=0.38, color=color, label=label)
        ax.bar_label(
            drawn,
            labels=["" if r[key] is None else f"{r[key]:.1f}×" for r in rows],
            padding=3,
            fontsize=8,
        )
        marks = [(r[ceiling], i) for r, i in zip(rows, ys, strict=True) if r[ceiling]]
        if marks:
            ax.scatter(*zip(*marks, strict=True), marker="|", s=160, color="black", zorder=3)
    ax.scatter([], [], marker="|", s=160, color="black", label="ceiling (machine's matmul rate)")
    ax.set_xscale("log")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_yticks(y, [f"{r['model']} vs {r['peer']}" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("jaxrec ÷ peer (log scale)")
    ax.set_title("jaxrec beside its peer, same machine and run")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def comparisons(records: list[dict]) -> list[dict]:
    """Per (model, peer) of the train records: {model, peer, jaxrec_epoch, peer_epoch,
    speedup, speedup_ceiling, jaxrec_eval, peer_eval, eval_ratio, eval_ceiling}; a value
    the run did not measure is None.

    speed-up = peer epoch time ÷ jaxrec's; ceilings need the machine's matmul rate (the
    `machine` case): training, speed-up × peak ÷ jaxrec's achieved FLOP/s (the peer's epoch
    time over the time jaxrec's counted FLOPs per epoch take at the peak); evaluation, the
    peer's seconds per user over the time jaxrec's scorer FLOPs per user take at the peak."""
    train = [r for r in records if r["benchmark"] == "train"]
    value = {(r["system"], r["model"], r["metric"]): r for r in train}
    peak = next((r["value"] for r in records if r["metric"] == "machine_matmul_flops"), None)
    pairs = sorted({(r["system"], r["model"]) for r in train if r["system"] != "jaxrec"})

    def get(system, model, metric):
        r = value.get((system, model, metric))
        return None if r is None else r["value"]

    out = []
    for peer, model in pairs:
        j, p = get("jaxrec", model, "epoch_time"), get(peer, model, "epoch_time")
        f = get("jaxrec", model, "achieved_flops")
        speedup = p / j if j and p else None
        je, pe = get("jaxrec", model, "eval_throughput"), get(peer, model, "eval_throughput")
        flops = value.get(("jaxrec", model, "eval_flops"))
        per_user = flops["value"] / flops["params"]["users"] if flops else None
        out.append(
            {
                "model": model,
                "peer": peer,
                "jaxrec_epoch": j,
                "peer_epoch": p,
                "speedup": speedup,
                "speedup_ceiling": speedup * peak / f if speedup and peak and f else None,
                "jaxrec_eval": je,
                "peer_eval": pe,
                "eval_ratio": je / pe if je and pe else None,
                "eval_ceiling": peak / (pe * per_user) if peak and pe and per_user else None,
            }
        )
    return out


def side_by_side(records: list[dict]) -> list[str]:
    """Markdown lines: jaxrec vs each peer, epoch time and evaluation throughput, with ratios
    and, where the run measured the machine's matmul rate, each ratio's ceiling."""
    rows = comparisons(records)
    if not rows:
        return []
    out = [
        "",
        "Side by side (same machine, same run). Epoch time: each side's examples per "
        "epoch ÷ its median training throughput; speed-up = peer ÷ jaxrec. Ceiling: the "
        "ratio if jaxrec ran the FLOPs it does (XLA's cost analysis of its train step, or "
        "of its scorer over the evaluation pass) at this run's matmul rate, the machine's "
        "limit for this implementation. It is an upper bound: loop bodies count once and "
        "the ranking's compares not at all. A ratio's goal above its ceiling needs "
        "fewer FLOPs than the peer's algorithm does, not a faster program:",
        "",
        "| model | peer | jaxrec epoch s | peer epoch s | speed-up | ceiling | "
        "jaxrec eval users/s | peer eval users/s | ratio | ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(x, fmt):
        return "" if x is None else fmt.format(x)

    for r in rows:
        cells = [
            r["model"],
            r["peer"],
            cell(r["jaxrec_epoch"], "{:,.1f}"),
            cell(r["peer_epoch"], "{:,.1f}"),
            cell(r["speedup"], "{:.1f}×"),
            cell(r["speedup_ceiling"], "{:,.1f}×"),
            cell(r["jaxrec_eval"], "{:,.0f}"),
            cell(r["peer_eval"], "{:,.0f}"),
            cell(r["eval_ratio"], "{:.1f}×"),
            cell(r["eval_ceiling"], "{:,.1f}×"),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out
