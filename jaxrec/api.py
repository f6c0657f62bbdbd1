"""The Python API: train, evaluate, recommend, embed and export in a few lines.

    import jaxrec

    model = jaxrec.train("events.csv", "gru4rec_games", workdir="runs/mine",
                         columns={"user": "user_id", "item": "item_id", "timestamp": "ts"},
                         overrides={"train.epochs": 3})
    model.evaluate()                    # the metric rows `jaxrec evaluate` prints
    model.recommend(["u1", "u7"], k=10)  # pyarrow table user, item, rank, score (raw ids)
    model.embed()                       # user and item vectors with raw ids
    model.export("scorer")              # a directory `jaxrec.load_scorer` reads
    model = jaxrec.open("runs/mine")    # the same object, later, from the workdir

Every method calls what the matching `jaxrec` command calls (`trainer.train_and_evaluate`,
`workdir.open_trained`, `trainer.evaluate_params`, `evaluation.recommend`, `profiles`,
`export.export_run`), so the API and the CLI give the same numbers from the same workdir.

In-memory data (a pyarrow Table, a pandas DataFrame, anything with `__arrow_c_stream__`) is
written once as Parquet to `<workdir>/data.parquet` and trained on as a file: the workdir
records its sha256 like any data file, and every `jaxrec` command works on that workdir.
pandas is never imported here; a DataFrame is converted through pyarrow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxrec.config import Config, load_config, to_dict
from jaxrec.errors import ConfigError

DATA_FILE = "data.parquet"  # where in-memory data is written inside the workdir
_SOURCES = ("source", "valid_source", "test_source")


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """A trained model's representations, rows in the order of their raw ids.

    user_ids: str [U'] (users with a history); users: float32 [U', D_u];
    item_ids: str [I]; items: float32 [I, D_i]. (`jaxrec embed` writes the same to Parquet.)
    """

    user_ids: np.ndarray
    users: np.ndarray
    item_ids: np.ndarray
    items: np.ndarray


class TrainedModel:
    """A trained workdir, opened with the parameters its final test used.

    Made by `jaxrec.train` or `jaxrec.open`; every method reads the same run and parameters
    that the `jaxrec evaluate | recommend | embed | export --workdir` commands read.
    Attributes: `workdir` (Path), `config` (Config), `parameters` (which checkpoint, in
    words), `run` and `params` (the `trainer.Run` and the parameter pytree).
    """

    def __init__(self, workdir: str | os.PathLike, trained):
        self.workdir = Path(workdir)
        self._trained = trained
        self.run = trained.run
        self.params = trained.params
        self.config: Config = trained.run.cfg
        self.parameters: str = trained.info["text"]

    def __repr__(self) -> str:
        return f"TrainedModel({self.config.model.name!r}, workdir={str(self.workdir)!r})"

    def evaluate(self, split: str = "test") -> list[dict]:
        """Metrics of the parameters on `split` ('valid' | 'test'), one dict per protocol of
        the config: the rows `jaxrec evaluate --workdir` prints (and writes with --out).
        `jaxrec.evaluation.format_metrics(row)` gives the printed line."""
        from jaxrec import trainer

        if split not in ("valid", "test"):
            raise ConfigError(f"split must be 'valid' or 'test', got {split!r}")
        if self._trained.info["data_changes"]:
            raise ConfigError(
                f"{self.workdir}: the data changed since training, so evaluating would "
                "re-split other events; restore the data files, or train a new workdir"
            )
        return trainer.evaluate_params(self.run, self.params, split)

    def recommend(self, users: Iterable | None = None, k: int = 10, *, split: str | None = None):
        """Top-`k` items per user → pyarrow Table `user`, `item`, `rank` (1..k), `score`,
        raw ids as strings; the rows of `jaxrec recommend --workdir --users --k` in the order
        of `users` (best first within a user; fewer than k rows where fewer items remain).

        users: raw ids (any type whose str() is the id in the data); None: every user.
        split: None serves from each user's whole history and excludes all of it; 'valid' /
        'test' give the evaluation lists of that stage (its input, its exclusions). Users
        not in the data, or not at that stage, are skipped with a warning.
        """
        import pyarrow as pa

        from jaxrec import evaluation, trainer

        stage = split or "all"
        run = self.run
        dense, raw = self._users(users, stage)
        e = run.cfg.eval
        ids, scores = evaluation.recommend(
            trainer.score_fn(run, self.params),
            run.split,
            stage,
            dense,
            k,
            chunk_size=e.chunk_size,
            max_history=trainer.history_width(run),
        )
        keep = ids >= 0  # slots past the last remaining item
        rows = keep.sum(axis=1)
        return pa.table(
            {
                "user": pa.array(np.repeat(raw, rows), pa.string()),
                "item": pa.array(run.data.item_vocab[ids[keep]].astype(str), pa.string()),
                "rank": pa.array(np.nonzero(keep)[1] + 1, pa.int32()),
                "score": pa.array(scores[keep], pa.float32()),
            }
        )

    def _users(self, users, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """(dense ids, raw ids) of the requested users that `stage` serves, request order."""
        from jaxrec.data import splits
        from jaxrec.data.interactions import lookup_ids

        run = self.run
        if stage == "all":  # every user with a history, as `jaxrec recommend` serves
            served = np.flatnonzero(splits.history(run.split).lengths > 0).astype(np.int32)
        elif stage in ("valid", "test"):
            served = run.split.eval_users(stage)
        else:
            raise ConfigError(f"split must be None, 'valid' or 'test', got {stage!r}")
        vocab = run.data.user_vocab.astype(str)
        if users is None:
            return served, vocab[served]
        raw = np.asarray([str(u) for u in ([users] if isinstance(users, str) else users)])
        raw = raw[np.sort(np.unique(raw, return_index=True)[1])]  # first occurrence order
        dense = lookup_ids(vocab, raw) if len(raw) else np.zeros(0, np.int32)
        ok = np.isin(dense, served)
        if not ok.all():
            shown = ", ".join(map(repr, raw[~ok][:5].tolist()))
            warnings.warn(
                f"{int((~ok).sum())} users are not served at this stage ({shown}); skipped",
                stacklevel=3,
            )
        return dense[ok].astype(np.int32), raw[ok]

    def embed(self) -> Embeddings:
        """User representations (from each user's whole history) and item embeddings with
        raw ids: what `jaxrec embed` writes."""
        from jaxrec.serving.profiles import item_vectors, user_vectors

        run = self.run
        users, u_vec = user_vectors(run, self.params, chunk_size=run.cfg.eval.chunk_size)
        return Embeddings(
            user_ids=run.data.user_vocab[users].astype(str),
            users=u_vec,
            item_ids=run.data.item_vocab.astype(str),
            items=item_vectors(run, self.params),
        )

    def export(
        self,
        path: str | os.PathLike,
        *,
        max_k: int = 100,
        history: int | None = None,
        force: bool = False,
    ) -> Path:
        """Write the compiled scorer artifact (`jaxrec export`) → its directory, which
        `jaxrec.load_scorer(path)` reads with jax and numpy only."""
        from jaxrec.serving.export import export_run

        return Path(
            export_run(self.run, self.params, path, max_k=max_k, history=history, force=force)
        )


def open(workdir: str | os.PathLike, *, newest_checkpoint: bool = False) -> TrainedModel:
    """Reopen a workdir trained by `jaxrec train` or `jaxrec.train` → `TrainedModel`.

    newest_checkpoint: allow a run whose training has not finished. Data files that changed
    since training are reported as warnings; ids always come from the saved vocabularies.
    """
    from jaxrec.workdir import open_trained

    def warn(line: str) -> None:
        warnings.warn(line, stacklevel=3)

    return TrainedModel(workdir, open_trained(workdir, newest=newest_checkpoint, warn=warn))


def train(
    data=None,
    config: str | os.PathLike | Config | None = None,
    *,
    workdir: str | os.PathLike,
    columns: Mapping[str, str] | None = None,
    format: str | None = None,
    overrides: Mapping[str, Any] | Iterable[str] = (),
    force: bool = False,
) -> TrainedModel:
    """Train (or resume) `config` on `data` in `workdir`, test it as `jaxrec train` does,
    and open the result → `TrainedModel`.

    data: a file path (any format `jaxrec data stats` reads), an in-memory table (pyarrow
      Table, pandas DataFrame, anything with `__arrow_c_stream__`), or None: the config's
      `data.source`.
    config: a config file, the name of a shipped config ('gru4rec_games'), a `Config`, or
      None: the embedded default.
    columns: role → column name, roles user, item and optionally rating, timestamp
      (`time` is read as timestamp); None guesses from the names (user_id, item_id, ...).
    format: the file's reader name; None detects it (with `data`, the config's own
      `data.format` and `data.columns` describe its own source and are not used).
    overrides: {'train.epochs': 3} or ['train.epochs=3'], as `--set`; paths in them are
      relative to the working directory.
    force: continue a workdir although its config or data changed.
    """
    from jaxrec import trainer

    workdir = Path(workdir)
    sets = _overrides(overrides)
    if data is not None:
        if not isinstance(data, str | os.PathLike):
            data = _write_table(data, columns, workdir, force)
            format = "parquet"
        # These events replace the config's source, and with it its reader and mapping.
        sets += [
            _set("data.source", str(Path(data).absolute())),
            _set("data.format", format),
            _set("data.columns", None if columns is None else _roles(columns)),
        ]
    cfg = _load(config, sets)
    trainer.train_and_evaluate(cfg, workdir, force=force)
    return open(workdir)


def _set(key: str, value) -> str:
    # JSON is YAML: a quoted string stays a string, whatever characters a path holds.
    return f"{key}={json.dumps(value)}"


def _overrides(overrides) -> list[str]:
    if isinstance(overrides, Mapping):
        return [_set(k, list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def _roles(columns: Mapping[str, str]) -> dict[str, str]:
    return {("timestamp" if r == "time" else r): str(c) for r, c in columns.items()}


def _load(config, sets: list[str]) -> Config:
    """`load_config` of a path, a shipped name or None; a `Config` goes through YAML and
    `load_config` too, so overrides are validated alike."""
    if not isinstance(config, Config):
        return load_config(config, sets)
    import yaml

    # Its data paths become overrides: relative ones stay relative to the working directory.
    paths = [_set(f"data.{k}", v) for k in _SOURCES if (v := getattr(config.data, k))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        return load_config(path, [*paths, *sets])


def _arrow_table(data):
    """An in-memory table as a pyarrow Table (pandas converted by pyarrow, never imported)."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise ConfigError(
        f"data must be a file path, a pyarrow Table, a pandas DataFrame or an object with "
        f"__arrow_c_stream__; got {type(data).__name__}"
    )


def _write_table(data, columns, workdir: Path, force: bool) -> Path:
    """Write in-memory events to `<workdir>/data.parquet` → that path. The same events
    rewrite the same bytes; other events in a workdir that already trained are refused
    unless `force` (they would silently replace the data its checkpoints were trained on)."""
    import pyarrow.parquet as pq

    from jaxrec.workdir import has_checkpoints

    table = _arrow_table(data)
    if columns is not None:  # only what is read: the file's identity is the training data
        table = table.select(list(dict.fromkeys(str(c) for c in columns.values())))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / DATA_FILE
    tmp = workdir / (DATA_FILE + ".tmp")
    pq.write_table(table, tmp)
    if path.exists() and _digest(path) == _digest(tmp):
        tmp.unlink()
        return path
    if path.exists() and has_checkpoints(workdir) and not force:
        tmp.unlink()
        raise ConfigError(
            f"{workdir} was trained on other data ({path}); use another workdir, or pass "
            "force=True to continue it on these events"
        )
    os.replace(tmp, path)
    return path


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
