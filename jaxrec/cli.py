"""The `jaxrec` console script: train | evaluate | recommend | data stats.

Errors a user can cause print one line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from jaxrec.errors import ConfigError, JaxrecError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxrec", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) a model, then test it beside baselines")
    t.add_argument("config", nargs="?", help="YAML config; omitted: the embedded synthetic default")
    t.add_argument("--workdir", help="where checkpoints and metrics go (default: runs/<config>)")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=3 (repeatable)",
    )
    t.add_argument(
        "--force", action="store_true", help="continue a workdir even though its config differs"
    )

    e = sub.add_parser("evaluate", help="evaluate a workdir's best parameters")
    e.add_argument("--workdir", required=True)
    e.add_argument("--split", choices=("valid", "test"), default="test")

    r = sub.add_parser("recommend", help="top-K items per user to a CSV file")
    r.add_argument("--workdir", required=True)
    r.add_argument("--k", type=int, default=10)
    r.add_argument("--split", choices=("valid", "test"), default="test")
    r.add_argument("--out", required=True, help="CSV path: user,item,rank,score (raw ids)")

    d = sub.add_parser("data", help="data set tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("stats", help="statistics of an interaction file")
    s.add_argument("path")
    s.add_argument("--format", help="reader name; detected from the file when omitted")
    return p


def _load_workdir(workdir: str):
    from jaxrec.config import load_config

    path = Path(workdir) / "config.yaml"
    if not path.exists():
        raise ConfigError(
            f"{workdir}: not a jaxrec workdir (no config.yaml); run `jaxrec train` first"
        )
    return load_config(path)


def _restore_best(workdir: str):
    from jaxrec import trainer
    from jaxrec.checkpoint import Checkpointer
    from jaxrec.errors import CheckpointError

    run = trainer.prepare(_load_workdir(workdir))
    ckpt = Checkpointer(Path(workdir) / "checkpoints")
    if ckpt.latest_step() is None:
        raise CheckpointError(f"{workdir}: no checkpoint yet; run `jaxrec train` first")
    best, _ = ckpt.restore_meta_and_best(run.state.params)
    ckpt.close()
    return run, best


def cmd_train(args) -> None:
    from jaxrec import trainer
    from jaxrec.config import load_config

    cfg = load_config(args.config, args.set)
    name = Path(args.config).stem if args.config else "default"
    trainer.train_and_evaluate(cfg, args.workdir or os.path.join("runs", name), force=args.force)


def cmd_evaluate(args) -> None:
    from jaxrec import evaluation, trainer

    run, best = _restore_best(args.workdir)
    for r in trainer.evaluate_params(run, best, args.split):
        print(evaluation.format_metrics(r))


def cmd_recommend(args) -> None:
    import numpy as np

    from jaxrec import evaluation, trainer

    run, best = _restore_best(args.workdir)
    inputs, _ = run.split.stage(args.split)
    users = np.flatnonzero(inputs.lengths > 0).astype(np.int32)
    e = run.cfg.eval
    ids, scores = evaluation.recommend(
        trainer.score_fn(run, best),
        run.split,
        args.split,
        users,
        args.k,
        chunk_size=e.chunk_size,
        max_history=e.max_history,
    )
    uv, iv = run.data.user_vocab, run.data.item_vocab
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "rank", "score"])
        for row, u in enumerate(users):
            for rank in range(args.k):
                if ids[row, rank] >= 0:
                    w.writerow([uv[u], iv[ids[row, rank]], rank + 1, f"{scores[row, rank]:.6g}"])
    print(f"wrote top-{args.k} for {len(users)} users to {args.out}")


def cmd_data(args) -> None:
    from jaxrec.data import formats, interactions

    data = formats.read_interactions(args.path, args.format)
    print(json.dumps(interactions.describe(data), indent=2, default=float))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "recommend": cmd_recommend,
        "data": cmd_data,
    }
    try:
        commands[args.command](args)
    except JaxrecError as e:
        print(f"jaxrec: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
