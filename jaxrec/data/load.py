"""From `DataConfig` to a `Split`: read (or generate), filter, split.

`data.source` is one of:
- `synthetic`: the embedded generator (`data.synthetic.*`);
- `shared:<path>`: a file under the data directory (`data_dir()`: `$JAXREC_DATA_DIR` when
  set, else `~/.cache/jaxrec`, where downloads go too);
- `download:<name>`: a registered public data set (`jaxrec.data.download.DATASETS`),
  fetched once into the data directory and checksummed (offline with JAXREC_OFFLINE=1);
- a file path (relative paths in a config file are relative to that file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxrec.config import DataConfig
from jaxrec.data import download, formats, interactions, splits, synthetic
from jaxrec.data.interactions import Interactions
from jaxrec.errors import ConfigError


def load_interactions(cfg: DataConfig, source: str | None = None) -> Interactions:
    """The event log named by `source` (default `cfg.source`), after the rating and k-core
    filters."""
    source = cfg.source if source is None else source
    if source == "synthetic":
        s = cfg.synthetic
        data = synthetic.generate(s.num_users, s.num_items, s.mean_length, s.num_clusters, s.seed)
    elif source.startswith("download:"):
        entry = download.DATASETS.get(source.removeprefix("download:"))
        if entry is None:
            known = ", ".join(sorted(download.DATASETS))
            raise ConfigError(f"data.source={source!r}: unknown data set; known: {known}")
        folder = download.fetch(entry)
        data = formats.read_interactions(
            folder / entry.files[0],
            cfg.format or entry.format,
            columns=cfg.columns or entry.columns,
        )
    else:
        data = formats.read_interactions(resolve_source(source), cfg.format, columns=cfg.columns)
    if cfg.min_rating is not None:
        data = interactions.filter_rating(data, cfg.min_rating)
    if cfg.min_user_events or cfg.min_item_events:
        data = interactions.filter_k_core(data, cfg.min_user_events, cfg.min_item_events)
    return data


def data_dir() -> Path:
    """The folder `shared:<path>` sources are read from: $JAXREC_DATA_DIR, else
    ~/.cache/jaxrec (the download cache, `download.cache_root`)."""
    return download.cache_root()


def resolve_source(source: str) -> Path:
    """The file a `data.source` names (`shared:<path>` under `data_dir()`)."""
    if source.startswith("shared:"):
        path = data_dir() / source.removeprefix("shared:")
        if not path.exists():
            raise ConfigError(
                f"data.source={source!r}: {path} does not exist; set JAXREC_DATA_DIR to the "
                "folder that holds the data sets"
            )
        return path
    return Path(source)


def load_split(cfg: DataConfig) -> tuple[Interactions, splits.Split]:
    """(the events, their split) as `cfg.split` names it, with the validation targets moved
    into training when `cfg.train_on_valid`. For `presplit` the events are the train file's,
    re-indexed over the vocabulary of all three files."""
    data, split, _ = load_split_onto(cfg, None)
    return data, split


def load_split_onto(cfg: DataConfig, vocab: tuple[np.ndarray, np.ndarray] | None):
    """`load_split`, with dense ids looked up in `vocab` = (user raw ids, item raw ids) — a
    workdir's saved vocabularies — instead of numbered from the files as they are now →
    (events, split, what did not map: `interactions.remap`'s report, None when nothing
    differs). vocab=None: `load_split`."""
    data, split, report = _load_split(cfg, vocab)
    return data, splits.valid_into_train(split) if cfg.train_on_valid else split, report


def source_files(cfg: DataConfig) -> dict[str, Path]:
    """{config key: file} of every file the data is read from (none for `synthetic`, whose
    identity is its config)."""
    out = {}
    for key in ("source", "valid_source", "test_source"):
        source = getattr(cfg, key)
        if source is None or source == "synthetic":
            continue
        if source.startswith("download:"):
            entry = download.DATASETS.get(source.removeprefix("download:"))
            if entry is None:
                continue  # load_interactions reports it
            out[f"data.{key}"] = download.fetch(entry) / entry.files[0]
        else:
            out[f"data.{key}"] = resolve_source(source)
    return out


def _onto(data: Interactions, vocab, reports: list) -> Interactions:
    if vocab is None:
        return data
    out, report = interactions.remap(data, *vocab)
    if report is not None:
        reports.append(report)
    return out


def _merge(reports: list[dict]) -> dict | None:
    """One report for every file read; None when every id mapped and every saved id has
    events (presplit files each hold only part of the vocabulary: only the union counts)."""
    if not reports:
        return None
    out = dict(reports[0])
    for r in reports[1:]:
        for k, v in r.items():
            out[k] = out[k] + v if isinstance(v, int) else (out[k] + v)[:5]
    return out if any(v for k, v in out.items() if isinstance(v, int)) else None


def _load_split(cfg: DataConfig, vocab) -> tuple[Interactions, splits.Split, dict | None]:
    reports: list[dict] = []
    if cfg.split == "presplit":
        if cfg.test_source is None:
            raise ConfigError("data.split=presplit needs data.test_source (and data.source)")
        train = _onto(load_interactions(cfg), vocab, reports)
        test = _onto(load_interactions(cfg, cfg.test_source), vocab, reports)
        valid = None
        if cfg.valid_source is not None:
            valid = _onto(load_interactions(cfg, cfg.valid_source), vocab, reports)
        split = splits.presplit(train, valid, test, test_input=cfg.test_input)
        parts = (train, test) if valid is None else (train, valid, test)
        aligned = splits.align_vocab(*parts)[0]  # the vocabulary the split uses
        if reports:  # absent counts are per file; over all of them:
            for r in reports:
                r["absent_users"] = r["absent_items"] = 0
            reports[0]["absent_users"] = split.num_users - int(_any_row(split, 0).sum())
            reports[0]["absent_items"] = split.num_items - int(_any_row(split, 1).sum())
        return aligned, split, _merge(reports)
    for name in ("valid_source", "test_source"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"data.{name} is read only with data.split=presplit")
    if cfg.test_input != "train_valid":
        raise ConfigError("data.test_input is read only with data.split=presplit")
    data = _onto(load_interactions(cfg), vocab, reports)
    kwargs = {
        "temporal_ratio": {"valid": cfg.valid_ratio, "test": cfg.test_ratio},
        "heldout_users": {
            "num_valid_users": cfg.valid_users,
            "num_test_users": cfg.test_users,
            "fold_in": cfg.fold_in,
        },
    }.get(cfg.split, {})
    return data, splits.make_split(data, cfg.split, **kwargs), _merge(reports)


def _any_row(split: splits.Split, axis: int) -> np.ndarray:
    """Users (axis 0) or items (axis 1) with at least one event in any part of `split`."""
    events = splits.history(split)
    if axis == 0:
        return events.lengths > 0
    return np.bincount(events.items, minlength=split.num_items) > 0
