"""The `jaxrec` command: train | evaluate | recommend | export | embed | generate | bench | data.

Errors a user can cause print one line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import sys
from pathlib import Path

from jaxrec.errors import ConfigError, JaxrecError


class _DEFAULTS(argparse.HelpFormatter):
    """Help with each option's default, where it has a meaningful one (not None/False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxrec", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"jaxrec {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    add = functools.partial(sub.add_parser, formatter_class=_DEFAULTS)

    t = add("train", help="train (or resume) a model, then test it beside baselines")
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
        "--force",
        action="store_true",
        help="continue a workdir although its config or data changed",
    )
    t.add_argument("--coordinator", help="multi-process run: HOST:PORT of process 0")
    t.add_argument("--num-processes", type=int, help="multi-process run: number of processes")
    t.add_argument("--process-id", type=int, help="multi-process run: this process, 0..N-1")

    e = add("evaluate", help="evaluate the parameters a workdir's final test used")
    _workdir_args(e)
    e.add_argument("--split", choices=("valid", "test"), default="test", help="stage to evaluate")
    e.add_argument("--out", help="also write the metrics as JSON to this path")

    r = add("recommend", help="top-K items per user to a CSV file (raw ids)")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--workdir",
        help="a trained workdir: by default every user of its data, from the whole history",
    )
    src.add_argument("--scorer", help="an exported artifact (jaxrec export); needs --input")
    r.add_argument("--input", help="with --scorer: interaction file whose users get top-K")
    r.add_argument("--format", help="reader of --input; detected from the file when omitted")
    r.add_argument("--k", type=int, default=10, help="items per user")
    r.add_argument(
        "--split",
        choices=("valid", "test"),
        help="with --workdir: the evaluation lists of this stage (its input, its exclusions) "
        "instead of serving from the whole history",
    )
    r.add_argument(
        "--users",
        help="with --workdir: only these users: a file of raw ids (one per line) or a "
        "comma-separated list",
    )
    r.add_argument(
        "--newest-checkpoint",
        action="store_true",
        help="with --workdir: allow a run whose training has not finished",
    )
    r.add_argument("--out", required=True, help="CSV path: user,item,rank,score; + .json metadata")

    x = add("export", help="write a compiled scorer artifact (jax.export)")
    _workdir_args(x)
    x.add_argument("--out", required=True, help="artifact directory to create")
    x.add_argument("--max-k", type=int, default=100, help="largest top-K the scorer serves")
    x.add_argument(
        "--history",
        type=int,
        help="history length read (default: eval.max_history, "
        "or fewer where the model reads fewer)",
    )
    x.add_argument("--force", action="store_true", help="replace an existing artifact")

    m = add("embed", help="user representations and item embeddings to Parquet")
    _workdir_args(m)
    m.add_argument("--out", required=True, help="Parquet path: kind, id, vector")

    g = add("generate", help="synthetic user behaviour from a trained GAN")
    _workdir_args(g, what="a trained cfgan or irgan workdir")
    g.add_argument("--users", type=int, required=True, help="number of virtual users")
    g.add_argument("--out", required=True, help="CSV path: user,item (raw item ids)")
    g.add_argument("--temperature", type=float, default=0.1, help="0: top items, no sampling")
    g.add_argument("--seed", type=int, default=0, help="seed of the users drawn and the sampling")

    sub.add_parser(
        "bench",
        help="benchmark suites: throughput, latency, memory, side by side with RecBole "
        "(see jaxrec bench --help)",
        add_help=False,
    )

    d = add("data", help="data set tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser(
        "stats", help="statistics of an interaction file", formatter_class=_DEFAULTS
    )
    s.add_argument("path", help="interaction file")
    s.add_argument("--format", help="reader name; detected from the file when omitted")
    return p


def _workdir_args(parser, what="a workdir trained by `jaxrec train`") -> None:
    parser.add_argument("--workdir", required=True, help=what)
    parser.add_argument(
        "--newest-checkpoint",
        action="store_true",
        help="allow a run whose training has not finished (its newest checkpoint)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxrec")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _warn(line: str) -> None:
    print(f"jaxrec: warning: {line}", file=sys.stderr)


def _open(args):
    """The workdir's trained run and parameters (`workdir.open_trained`); prints which
    parameters they are, and warns of data that changed since training (ids always come
    from the saved vocabularies)."""
    from jaxrec.workdir import open_trained

    trained = open_trained(args.workdir, newest=args.newest_checkpoint, warn=_warn)
    print(f"parameters: {trained.info['text']}")
    return trained


def _check_out(path: str) -> Path:
    """Refuse an --out whose folder is missing or unwritable before any work is done."""
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--out {path}: the folder {folder} does not exist; create it first")
    if out.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file path")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--out {path}: the folder {folder} is not writable")
    return out


def cmd_train(args) -> None:
    from jaxrec import distributed, trainer
    from jaxrec.config import load_config

    cfg = load_config(args.config, args.set)
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    name = Path(args.config).stem if args.config else "default"
    trainer.train_and_evaluate(cfg, args.workdir or os.path.join("runs", name), force=args.force)


def cmd_evaluate(args) -> None:
    from jaxrec import evaluation, trainer

    out = _check_out(args.out) if args.out else None
    trained = _open(args)
    if trained.info["data_changes"]:
        raise ConfigError(
            f"{args.workdir}: the data changed since training (see the warnings above), so "
            "evaluating would re-split other events and not reproduce the trained protocol; "
            "restore the data files, or train a new workdir on the new data"
        )
    results = trainer.evaluate_params(trained.run, trained.params, args.split)
    for r in results:
        print(evaluation.format_metrics(r))
    if out is not None:
        doc = {
            "split": trained.run.split.name,
            "stage": args.split,
            "results": results,
            "parameters": trained.info,
        }
        out.write_text(json.dumps(doc, indent=2, default=float))


def _write_recommendations(path: Path, users, items, scores) -> None:
    """CSV user,item,rank,score; empty slots (fewer than k candidates) are skipped. Written
    to a temporary file and renamed, so a failure leaves no half file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "rank", "score"])
        for u, row_items, row_scores in zip(users, items, scores, strict=True):
            for rank, (item, score) in enumerate(zip(row_items, row_scores, strict=True)):
                if item is not None:
                    w.writerow([u, item, rank + 1, f"{score:.9g}"])
    os.replace(tmp, path)


def _recommend_from_scorer(args) -> None:
    from jaxrec.data import formats
    from jaxrec.serving.scorer import load_scorer

    if not args.input:
        raise ConfigError("recommend --scorer needs --input, an interaction file of histories")
    for flag in ("split", "users"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag} is read with --workdir only")
    out = _check_out(args.out)
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
    _write_recommendations(out, raw_users, items, scores)
    print(f"wrote top-{args.k} for {len(users)} users to {out}")


def _chosen_users(spec: str | None, run, candidates):
    """Dense ids of the users to recommend for: `candidates`, or those named by `spec` (a
    file of raw ids, one per line, or a comma-separated list) → (ids, unknown raw ids)."""
    import numpy as np

    if spec is None:
        return candidates, []
    from jaxrec.data.interactions import lookup_ids

    path = Path(spec)
    raw = path.read_text().split() if path.is_file() else [x for x in spec.split(",") if x]
    dense = lookup_ids(run.data.user_vocab.astype(str), np.asarray(raw, dtype=str))
    unknown = [u for u, d in zip(raw, dense.tolist(), strict=True) if d < 0]
    return np.intersect1d(dense[dense >= 0], candidates).astype(np.int32), unknown


def cmd_recommend(args) -> None:
    import numpy as np

    from jaxrec import evaluation, trainer
    from jaxrec.data import splits

    if args.scorer:
        return _recommend_from_scorer(args)
    if args.input or args.format:
        raise ConfigError("--input and --format are read with --scorer only")
    out = _check_out(args.out)
    trained = _open(args)
    run = trained.run
    stage = args.split or "all"
    if stage == "all":  # every user with a history
        candidates = np.flatnonzero(splits.history(run.split).lengths > 0).astype(np.int32)
    else:  # exactly the users the stage's evaluation scores
        candidates = run.split.eval_users(stage)
    users, unknown = _chosen_users(args.users, run, candidates)
    if unknown:
        shown = ", ".join(map(repr, unknown[:5]))
        _warn(f"--users: {len(unknown)} users are not in the workdir's data ({shown}); skipped")
    if len(users) == 0:
        raise ConfigError(
            f"--users {args.users}: none of these users is served at this stage"
            if args.users
            else f"{args.workdir}: the {stage} stage has no users to list"
        )
    e = run.cfg.eval
    ids, scores = evaluation.recommend(
        trainer.score_fn(run, trained.params),
        run.split,
        stage,
        users,
        args.k,
        chunk_size=e.chunk_size,
        max_history=trainer.history_width(run),
    )
    iv = run.data.item_vocab
    items = [[iv[i] if i >= 0 else None for i in row] for row in ids.tolist()]
    _write_recommendations(out, run.data.user_vocab[users], items, scores)
    what = (
        "serving: every user's whole history in the data (all stages), all of it excluded"
        if stage == "all"
        else f"evaluation lists of the {stage} stage: its input rows, excluding what its "
        "evaluation excludes (held-out targets are not in the input)"
    )
    meta = {
        "workdir": str(Path(args.workdir).absolute()),
        "model": run.cfg.model.name,
        "lists": what,
        "stage": stage,
        "k": args.k,
        "users": len(users),
        "unknown_users": unknown,
        "parameters": trained.info,
    }
    out.with_name(out.name + ".json").write_text(json.dumps(meta, indent=2, default=float))
    print(f"wrote top-{args.k} for {len(users)} users to {out} ({what})")


def cmd_export(args) -> None:
    from jaxrec.serving.export import export_run

    trained = _open(args)
    path = export_run(
        trained.run,
        trained.params,
        args.out,
        max_k=args.max_k,
        history=args.history,
        force=args.force,
    )
    print(f"exported {trained.run.cfg.model.name} scorer to {path}")


def cmd_embed(args) -> None:
    from jaxrec.serving.profiles import write_embeddings

    out = _check_out(args.out)
    trained = _open(args)
    info = write_embeddings(out, trained.run, trained.params)
    print(
        f"wrote {info['users']} user vectors (D={info['user_dim']}) and {info['items']} item "
        f"vectors (D={info['item_dim']}) to {out}"
    )


def cmd_generate(args) -> None:
    from jaxrec.synthesize import format_report, write_generated

    out = _check_out(args.out)
    trained = _open(args)
    report = write_generated(
        out,
        trained.run,
        trained.params,
        args.users,
        seed=args.seed,
        temperature=args.temperature,
    )
    print(f"wrote {report['generated']['events']} events of {args.users} virtual users to {out}")
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
