"""The `jaxrec` console script: train | evaluate | recommend | export | embed | generate | data.

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
    t.add_argument("--coordinator", help="multi-process run: HOST:PORT of process 0")
    t.add_argument("--num-processes", type=int, help="multi-process run: number of processes")
    t.add_argument("--process-id", type=int, help="multi-process run: this process, 0..N-1")

    e = sub.add_parser("evaluate", help="evaluate a workdir's best parameters")
    e.add_argument("--workdir", required=True)
    e.add_argument("--split", choices=("valid", "test"), default="test")

    r = sub.add_parser("recommend", help="top-K items per user to a CSV file")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--workdir", help="a trained workdir: recommend for its split's users")
    src.add_argument("--scorer", help="an exported artifact (jaxrec export); needs --input")
    r.add_argument("--input", help="with --scorer: interaction file whose users get top-K")
    r.add_argument("--format", help="reader of --input; detected from the file when omitted")
    r.add_argument("--k", type=int, default=10)
    r.add_argument("--split", choices=("valid", "test"), default="test")
    r.add_argument("--out", required=True, help="CSV path: user,item,rank,score (raw ids)")

    x = sub.add_parser("export", help="write a compiled scorer artifact (jax.export)")
    x.add_argument("--workdir", required=True)
    x.add_argument("--out", required=True, help="artifact directory to create")
    x.add_argument("--max-k", type=int, default=100, help="largest top-K the scorer serves")
    x.add_argument(
        "--history",
        type=int,
        help="history length read (default: eval.max_history, "
        "or fewer where the model reads fewer)",
    )
    x.add_argument("--force", action="store_true", help="replace an existing artifact")

    m = sub.add_parser("embed", help="user representations and item embeddings to Parquet")
    m.add_argument("--workdir", required=True)
    m.add_argument("--out", required=True, help="Parquet path: kind, id, vector")

    g = sub.add_parser("generate", help="synthetic user behaviour from a trained GAN")
    g.add_argument("--workdir", required=True, help="a trained cfgan or irgan workdir")
    g.add_argument("--users", type=int, required=True, help="number of virtual users")
    g.add_argument("--out", required=True, help="CSV path: user,item (raw item ids)")
    g.add_argument("--temperature", type=float, default=0.1, help="0: top items, no sampling")
    g.add_argument("--seed", type=int, default=0)

    sub.add_parser("bench", help="benchmark suite (jaxrec bench --help)", add_help=False)

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
    from jaxrec import distributed, host_memory, trainer
    from jaxrec.config import load_config

    cfg = load_config(args.config, args.set)
    host_memory.apply_setting(cfg.train.host_malloc)  # before XLA's threads start
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    name = Path(args.config).stem if args.config else "default"
    trainer.train_and_evaluate(cfg, args.workdir or os.path.join("runs", name), force=args.force)


def cmd_evaluate(args) -> None:
    from jaxrec import evaluation, trainer

    run, best = _restore_best(args.workdir)
    for r in trainer.evaluate_params(run, best, args.split):
        print(evaluation.format_metrics(r))


def _write_recommendations(path: str, users, items, scores) -> None:
    """CSV user,item,rank,score; empty slots (fewer than k candidates) are skipped."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "rank", "score"])
        for u, row_items, row_scores in zip(users, items, scores, strict=True):
            for rank, (item, score) in enumerate(zip(row_items, row_scores, strict=True)):
                if item is not None:
                    w.writerow([u, item, rank + 1, f"{score:.6g}"])


def _recommend_from_scorer(args) -> None:
    from jaxrec.data import formats
    from jaxrec.scorer import load_scorer

    if not args.input:
        raise ConfigError("recommend --scorer needs --input, an interaction file of histories")
    scorer = load_scorer(args.scorer)
    data = formats.read_interactions(args.input, args.format)
    seqs = data.sequences()
    users = [u for u in range(data.num_users) if seqs.lengths[u] > 0]
    inputs = [data.item_vocab[seqs.row(u)].tolist() for u in users]
    raw_users = [str(data.user_vocab[u]) for u in users]
    ids, scores = scorer.recommend(
        inputs, args.k, users=raw_users if scorer.uses_user_ids else None, unknown="skip"
    )
    items = [[i if i else None for i in row] for row in ids.tolist()]
    _write_recommendations(args.out, raw_users, items, scores)
    print(f"wrote top-{args.k} for {len(users)} users to {args.out}")


def cmd_recommend(args) -> None:
    import numpy as np

    from jaxrec import evaluation, trainer

    if args.scorer:
        return _recommend_from_scorer(args)
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
        max_history=trainer.history_width(run),
    )
    iv = run.data.item_vocab
    items = [[iv[i] if i >= 0 else None for i in row] for row in ids.tolist()]
    _write_recommendations(args.out, run.data.user_vocab[users], items, scores)
    print(f"wrote top-{args.k} for {len(users)} users to {args.out}")


def cmd_export(args) -> None:
    from jaxrec.export import export_run

    run, best = _restore_best(args.workdir)
    path = export_run(run, best, args.out, max_k=args.max_k, history=args.history, force=args.force)
    print(f"exported {run.cfg.model.name} scorer to {path}")


def cmd_embed(args) -> None:
    from jaxrec.profiles import write_embeddings

    run, best = _restore_best(args.workdir)
    info = write_embeddings(args.out, run, best)
    print(
        f"wrote {info['users']} user vectors (D={info['user_dim']}) and {info['items']} item "
        f"vectors (D={info['item_dim']}) to {args.out}"
    )


def cmd_generate(args) -> None:
    from jaxrec.synthesize import format_report, write_generated

    run, best = _restore_best(args.workdir)
    report = write_generated(
        args.out, run, best, args.users, seed=args.seed, temperature=args.temperature
    )
    print(
        f"wrote {report['generated']['events']} events of {args.users} virtual users to {args.out}"
    )
    print(format_report(report))


def cmd_data(args) -> None:
    from jaxrec.data import formats, interactions

    data = formats.read_interactions(args.path, args.format)
    print(json.dumps(interactions.describe(data), indent=2, default=float))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own parser: jaxrec.bench
        from jaxrec import bench

        return bench.main(argv[1:])
    args = _parser().parse_args(argv)
    commands = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "recommend": cmd_recommend,
        "export": cmd_export,
        "embed": cmd_embed,
        "generate": cmd_generate,
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
