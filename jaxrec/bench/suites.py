"""The suites of `jaxrec bench`: which cases run (each in its own process: `isolation`),
the peers beside them, and the command line.

Peers (`--peers recbole`, the runner in the checkout's `benchmarks/peers/recbole.py`) run
right after jaxrec's case of the same model, so that each ratio compares two runs close in
time on a machine whose speed may drift.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from jaxrec.bench.isolation import case_main as _case_main
from jaxrec.bench.isolation import run_isolated as _run_isolated
from jaxrec.errors import ConfigError, JaxrecError

DESCRIPTION = (
    "`jaxrec bench`: training throughput, step latency, compile time, evaluation throughput, "
    "memory and scorer latency, measured the same way every time, as JSON records."
)

# The suites: (benchmark, model, config file relative to the repo's configs/, overrides).
_SCALE = [
    "data.synthetic.num_users=2000",
    "data.synthetic.mean_length=30",
    "model.gru4rec.layers=[64]",
    "loss.n_sample=512",
    "train.batch_size=256",
    "train.steps_per_call=8",
]
_SCORER = [
    "model.gru4rec.layers=[64]",
    "data.synthetic.num_users=300",
    "data.synthetic.mean_length=20",
    "eval.max_history=50",
]


def _scale(sizes):
    """GRU4Rec's step over catalogue `sizes`, with sparse and dense updates."""
    return [
        (
            "embedding-scale",
            "gru4rec",
            None,
            [*_SCALE, f"data.synthetic.num_items={n}", f"optim.sparse={s}"],
        )
        for n in sizes
        for s in ("true", "false")
    ]


def _serving(sizes, shard_items=1_000_000):
    """Scorer latency at catalogue `sizes`, then table memory per device at `shard_items`."""
    scorer = [
        ("scorer", "gru4rec", None, [*_SCORER, f"data.synthetic.num_items={n}"]) for n in sizes
    ]
    shards = [*_SCALE, f"data.synthetic.num_items={shard_items}", "optim.sparse=true"]
    return [*scorer, ("embedding-shards", "gru4rec", None, shards)]


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
SYNTHETIC_DATA = [
    "data.source=synthetic",
    "data.format=null",
    "data.columns=null",
    "data.min_rating=null",
    "data.valid_source=null",
    "data.test_source=null",
    "data.test_input=train_valid",
    "data.split=leave_one_out",
    "data.synthetic.num_users=5000",
    "data.synthetic.mean_length=30",
]


def _family_scale(sequential: int, rows: int):
    """Each family's own config on the synthetic data: `sequential` items for the sequential
    models, `rows` for the models whose input or output is a catalogue-wide row."""
    big = [
        ("caser", "caser_games.yaml", sequential),
        ("nextitnet", "nextitnet_games.yaml", sequential),
        ("multvae", "multvae_ml1m.yaml", rows),
        ("cdae", "cdae_ml1m.yaml", rows),
        ("cfgan", "cfgan_ml100k.yaml", rows),
        ("irgan", "irgan_ml100k.yaml", rows),
    ]
    return [
        ("synthetic-scale", model, config, [*SYNTHETIC_DATA, f"data.synthetic.num_items={n}"])
        for model, config, n in big
    ]


_MACHINE = [("machine", "-", None, [])]
SUITES = {
    # Sized to finish in minutes on a small CPU machine: fewer calls (fewer still where a
    # call is slow), the catalogue sweep's ends, one scorer size, shard memory on 1 and 8
    # shards. Evaluation reads every test user, as RecBole's validation pass does: a sample
    # would put the longest histories into few chunks and misstate users/s.
    "quick": {
        "calls": 5,
        "repeats": 3,
        "warmup": 2,
        "repeat_seconds": 2.0,
        "min_calls": 2,
        "shards": (1, 8),
        "cases": _MACHINE
        + _TRAIN
        + _scale((10_000, 1_000_000))
        + _serving((10_000,), shard_items=100_000),
    },
    "full": {
        "calls": 50,
        "repeats": 5,
        "cases": _MACHINE
        + _TRAIN
        + _family_scale(1_000_000, 20_000)
        + _scale((10_000, 100_000, 1_000_000, 10_000_000))
        + _serving((10_000, 100_000, 1_000_000)),
    },
    "family-scale": {
        "calls": 10,
        "repeats": 3,
        "cases": _MACHINE + _family_scale(1_000_000, 20_000),
    },
    "embedding-scale": {
        "calls": 20,
        "repeats": 3,
        "cases": _MACHINE + _scale((10_000, 100_000, 1_000_000, 10_000_000)) + _serving(()),
    },
    "scorer": {"calls": 30, "repeats": 1, "cases": _serving((10_000, 100_000, 1_000_000))[:-1]},
}
# Cases that need several devices run on 8 fake CPU devices (memory accounting, not speed).
_CPU_DEVICES = {"embedding-shards": 8}


def _peers_root(configs_dir: Path) -> Path:
    """The checkout holding benchmarks/peers: jaxrec's own (so a copied configs folder keeps
    its peers), else the folder above `configs_dir`."""
    own = Path(__file__).resolve().parents[2]
    return own if (own / "benchmarks" / "peers").is_dir() else configs_dir.resolve().parent


def _peer_runner(root: Path):
    """The RecBole runner of the checkout at `root` (`benchmarks/peers/recbole.py`), loaded
    by path since peers' runners are not part of the installed package → module, or None
    where the checkout lacks it."""
    path = root / "benchmarks" / "peers" / "recbole.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("jaxrec_peers_recbole", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def run_suite(
    suite: str,
    out: Path,
    configs_dir: Path,
    only: list[str] | None = None,
    peers: list[str] = (),
) -> list:
    """Run every case of `suite` in its own process, each train case followed by its model's
    run in each peer of `peers` (`recbole`: the checkout's `benchmarks/peers/recbole.py`);
    write results.json, results.md, plots. A config file a case reads that is missing is a
    ConfigError, raised before any case runs."""
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    spec = SUITES[suite]
    _check_configs(suite, configs_dir, only)
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    shared = configs_dir.resolve().parent.parent / "shared" / "data"
    data_dir = os.environ.get("JAXREC_DATA_DIR")
    if data_dir is None and shared.is_dir():  # the repo's layout: ../shared/data
        data_dir = str(shared)
    for benchmark, model, config, overrides in _selected(spec["cases"], only):
        path = None if config is None else configs_dir / config
        case = _case(spec, benchmark, model, path, overrides)
        label = f"{benchmark}/{model}" + (f" {overrides[-2:]}" if config is None else "")
        got, error = _run_logged(case, _case_env(benchmark, data_dir), label)
        if error:
            skipped.append(error)
            continue
        records += got
        if "recbole" in peers and benchmark == "train":
            # Right after jaxrec's case: the ratio compares two runs close in time.
            got, why = _recbole(model, path, overrides, configs_dir, data_dir, spec, got)
            records += got
            skipped += [w for w in why if w not in skipped]  # a missing venv: said once
    (out / "results.json").write_text(json.dumps(records, indent=2))
    from jaxrec.bench.report import plots, table

    (out / "results.md").write_text(table(records, skipped))
    plots(records, out)
    return records


def _case(spec: dict, benchmark: str, model: str, path: Path | None, overrides: list) -> dict:
    """The JSON spec of one case of a suite `spec`."""
    scale = benchmark == "embedding-scale"
    update = "sparse" if "optim.sparse=true" in overrides else "dense"
    case = {
        "benchmark": benchmark,
        "config": None if path is None else str(path),
        "set": [*overrides, "train.epochs=1000", "train.progress=false"],
        "calls": spec["calls"],
        "repeats": spec["repeats"],
        "warmup": spec.get("warmup", 3),
        "repeat_seconds": spec.get("repeat_seconds"),
        "min_calls": spec.get("min_calls", 1),
        "shards": spec.get("shards", (1, 2, 4, 8)),
        "params": {"update": update, "shards": 1} if scale else {},
    }
    if path is None:
        case["set"].insert(0, f"model.name={model}")
    if benchmark == "machine":
        case["set"] = []
    return case


def _case_env(benchmark: str, data_dir: str | None) -> dict:
    """Environment variables a case sets before JAX starts."""
    env = {} if data_dir is None else {"JAXREC_DATA_DIR": data_dir}
    if benchmark in _CPU_DEVICES:
        env |= {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(_CPU_DEVICES[benchmark])}
    return env


def _run_logged(case: dict, env: dict, label: str) -> tuple[list, str]:
    """`_run_isolated`, said on stdout → (records, '' or the line the report lists)."""
    print(f"bench: {label} ...", flush=True)
    t = time.perf_counter()
    got, phases, error = _run_isolated(case, env)
    if error:
        print(f"bench: {label} failed", flush=True)
        return [], f"{label}: failed: {error}"
    spent = ", ".join(f"{k} {v:.0f}" for k, v in phases.items())
    spent = f" ({spent})" if spent else ""
    print(f"bench: {label} done in {time.perf_counter() - t:.0f} s{spent}", flush=True)
    return got, ""


def _recbole(model, path, overrides, configs_dir, data_dir, spec, got) -> tuple[list, list]:
    """RecBole's run of `model` beside jaxrec's case records `got` → (records, skipped)."""
    from jaxrec.config import load_config

    root = _peers_root(configs_dir)
    runner = _peer_runner(root)
    if runner is None:
        where = root / "benchmarks" / "peers" / "recbole.py"
        return [], [f"recbole: no peer runner at {where}; --peers needs a jaxrec checkout"]
    ctx = {**got[0]["context"], "load_avg_1min": os.getloadavg()[0], "config": None}
    sizes = {model: runner.peer_sizes(model, load_config(path, overrides))}
    data = None if data_dir is None else Path(data_dir)
    return runner.recbole_records([model], root, data, spec.get("peer_epochs", 2), ctx, sizes)


def main(argv: list[str] | None = None) -> int:
    """`jaxrec bench` (and `python -m benchmarks`): run a suite → exit status 0; a usage
    error (non-empty --out without --force, missing configs) → one line and status 2."""
    ap = argparse.ArgumentParser(
        prog="jaxrec bench",
        description=DESCRIPTION,
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
