"""Peers in the same benchmark run: RecBole beside jaxrec (`jaxrec bench --peers recbole`).

A runner of the repository, not of the installed package: `jaxrec bench` loads it by path
from the checkout (`jaxrec.bench.suites._peer_runner`); its records are rendered beside
jaxrec's by `jaxrec.bench.report.side_by_side`.

RecBole lives in its own virtual environment (`bash benchmarks/peers/recbole_setup.sh`;
`RECBOLE_VENV`, default /work/peers/recbole-venv). For each autoencoder of the suite,
`benchmarks/peers/recbole_autoencoder.py` trains RecBole's model on the same DiffRec ML-1M
split with jaxrec's hyperparameters (batch 500 users, Adam 1e-3, [I→600→200→600→I]; CDAE
batch 256) for `epochs` epochs, validating (full ranking) after each, and its JSON becomes
records with `system: "recbole"`: `train_throughput` (users/s, median over epochs),
`eval_throughput` (full-ranking validation users/s), `peak_memory` and the test metrics of
that short run. These runs time speed; the quality of converged runs is in the README.
RecBole's CDAE scores the full output with BCE; jaxrec's config samples negatives (the
paper's scheme), so their CDAE rows compare two training objectives of the same model.

Sequential models (GRU4Rec, Caser, NextItNet on SASRec's Games file): a whole RecBole epoch
takes minutes on a small CPU machine, so the run times the first batches of one epoch
(`recbole_sequential.py --max-batches`, `SEQUENTIAL` below; RecBole trains each of them on
one (prefix → next item) example per target with a full softmax) and one full-ranking
validation pass over every validation user.

Epoch time is the common unit: jaxrec's examples differ by family (Caser windows of T
targets, NextItNet user rows, RecBole prefixes), so each side's `epoch_time` is its own
examples per epoch ÷ its median throughput (`params.extrapolated` when not a whole epoch).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

# jaxrec model name → RecBole model name (the autoencoders share one script and split).
AUTOENCODERS = {"multvae": "MultiVAE", "multdae": "MultiDAE", "cdae": "CDAE"}
# jaxrec name → (RecBole model, batches timed): about 10,000 examples at each config's batch.
SEQUENTIAL = {"gru4rec": ("GRU4Rec", 200), "caser": ("Caser", 20), "nextitnet": ("NextItNet", 320)}


def peer_sizes(model: str, cfg) -> dict:
    """RecBole settings that follow jaxrec's config `cfg` of a sequential model, so that a
    bench over changed configs compares the same sizes ({} for the others)."""
    B = cfg.train.batch_size
    if model == "caser":
        m = cfg.model.caser
        return {
            "embedding_size": m.embedding,
            "MAX_ITEM_LIST_LENGTH": m.length,
            "train_batch_size": B,
        }
    if model == "nextitnet":
        m = cfg.model.nextitnet
        return {
            "embedding_size": m.embedding,
            "MAX_ITEM_LIST_LENGTH": m.max_length,
            "train_batch_size": B,
        }
    return {}


def _command(
    model: str,
    python: Path,
    repo: Path,
    data_dir,
    epochs: int,
    out: Path,
    tmp,
    sizes: dict | None = None,
):
    """The peer script's command line for jaxrec model `model` (`sizes`: `--set`s)."""
    peers, threads = repo / "benchmarks" / "peers", str(os.cpu_count() or 1)
    common = ["--threads", threads, "--out", str(out), "--work-dir", str(tmp)]
    common += [f"--set={k}={json.dumps(v)}" for k, v in (sizes or {}).items()]
    if model in SEQUENTIAL:  # batch size as jaxrec's config (the script's default); one valid pass
        name, batches = SEQUENTIAL[model]
        cmd = [
            str(python),
            str(peers / "recbole_sequential.py"),
            "--model",
            name,
            "--epochs",
            "1",
            "--max-batches",
            str(batches),
            *common,
        ]
        if data_dir is not None:
            cmd += ["--data", str(data_dir / "amazon-games-sasrec" / "Video.txt")]
        return cmd
    cmd = [
        str(python),
        str(peers / "recbole_autoencoder.py"),
        "--model",
        AUTOENCODERS[model],
        "--epochs",
        str(epochs),
        "--eval-step",
        "1",
        *common,
    ]
    if data_dir is not None:
        cmd += ["--data", str(data_dir / "ml-1m-diffrec-clean")]
    return cmd


def venv_python() -> Path:
    return Path(os.environ.get("RECBOLE_VENV", "/work/peers/recbole-venv")) / "bin" / "python"


def recbole_records(
    models: list[str],
    repo: Path,
    data_dir: Path | None,
    epochs: int,
    context: dict,
    sizes: dict | None = None,
) -> tuple[list[dict], list[str]]:
    """Run RecBole for each of `models` (jaxrec names) → (records, skipped-with-reason);
    sizes: {model: RecBole settings} (`peer_sizes`)."""
    python = venv_python()
    wanted = [m for m in models if m in AUTOENCODERS or m in SEQUENTIAL]
    if not python.exists():
        return [], [
            f"recbole: no venv at {python.parent.parent} (bash benchmarks/peers/recbole_setup.sh)"
        ]
    records, skipped = [], []
    for model in wanted:
        print(f"bench: peer recbole/{model} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "peer.json"
            cmd = _command(
                model, python, repo, data_dir, epochs, out, tmp, (sizes or {}).get(model)
            )
            env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode or not out.exists():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
                skipped.append(f"recbole/{model}: failed: {' | '.join(tail)}")
                continue
            records += to_records(model, json.loads(out.read_text()), context)
        print(f"bench: peer recbole/{model} done", flush=True)
    return records, skipped


def to_records(model: str, peer: dict, context: dict) -> list[dict]:
    """One RecBole run's JSON (recbole_autoencoder.py / recbole_sequential.py) → records."""
    ctx = {
        **context,
        "config": {
            "peer_args": peer["args"],
            "versions": peer["versions"],
            "torch_num_threads": peer["torch_num_threads"],
        },
    }
    # The dataset names jaxrec's train file, so both systems share a row key in the tables.
    data = str(peer["data"]) if model in SEQUENTIAL else f"{peer['data']}/train_list.npy"
    base = {
        "system": "recbole",
        "benchmark": "train",
        "model": model,
        "dataset": data,
        "context": ctx,
    }
    batch = peer.get("settings", {}).get("train_batch_size") or peer["args"].get("batch_size")
    params = {"batch_size": batch, "epochs": len(peer["epoch_train_s"])}
    out = []

    def add(metric, values, unit, extra=None):
        rec = {
            **base,
            "metric": metric,
            "value": statistics.median(values),
            "unit": unit,
            "params": {**params, **(extra or {})},
        }
        if len(values) > 1:
            rec["spread"] = [min(values), max(values)]
        out.append(rec)

    rates = peer.get("users_per_s") or peer["examples_per_s"]
    add("train_throughput", rates, "examples/s")
    if "train_examples_per_epoch" in peer:  # a sequential run: maybe only the first batches
        whole = all(
            n == peer["train_examples_per_epoch"] for n in peer["trained_examples_per_epoch"]
        )
        add(
            "epoch_time",
            [peer["train_examples_per_epoch"] / r for r in rates],
            "s",
            {"extrapolated": not whole},
        )
    else:  # autoencoders: whole epochs
        add("epoch_time", peer["epoch_train_s"], "s", {"extrapolated": False})
    if peer.get("valid_users_per_s"):
        add("eval_throughput", peer["valid_users_per_s"], "users/s", {"protocol": "full"})
    add("peak_memory", [peer["peak_rss_mib"]], "MiB", {"memory": "host_rss"})
    for name, value in peer["test"].items():
        add(f"test_{name.lower()}", [value], "", {"short_run": True})
    return out
