"""From `DataConfig` to a `Split`: read (or generate), filter, split.

`data.source` is one of:
- `synthetic`: the embedded generator (`data.synthetic.*`);
- `shared:<path>`: a file under the shared data directory, `$JAXREC_DATA_DIR` when set,
  else `../shared/data` from the working directory (the layout of this project's CI);
- `download:<name>`: a registered public data set (`jaxrec.data.download.DATASETS`),
  fetched once and checksummed (offline with JAXREC_OFFLINE=1);
- a file path (relative paths in a config file are relative to that file).
"""

from __future__ import annotations

import os
from pathlib import Path

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


def shared_data_dir() -> Path:
    """$JAXREC_DATA_DIR, else ../shared/data from the working directory."""
    env = os.environ.get("JAXREC_DATA_DIR")
    return Path(env) if env else Path("..", "shared", "data").resolve()


def resolve_source(source: str) -> Path:
    if source.startswith("shared:"):
        path = shared_data_dir() / source.removeprefix("shared:")
        if not path.exists():
            raise ConfigError(
                f"data.source={source!r}: {path} does not exist; set JAXREC_DATA_DIR to the "
                "folder that holds the shared data sets"
            )
        return path
    return Path(source)


def load_split(cfg: DataConfig) -> tuple[Interactions, splits.Split]:
    """(the events, their split) as `cfg.split` names it, with the validation targets moved
    into training when `cfg.train_on_valid`. For `presplit` the events are the train file's,
    re-indexed over the vocabulary of all three files."""
    data, split = _load_split(cfg)
    return data, splits.valid_into_train(split) if cfg.train_on_valid else split


def _load_split(cfg: DataConfig) -> tuple[Interactions, splits.Split]:
    if cfg.split == "presplit":
        if cfg.test_source is None:
            raise ConfigError("data.split=presplit needs data.test_source (and data.source)")
        train, test = load_interactions(cfg), load_interactions(cfg, cfg.test_source)
        valid = None if cfg.valid_source is None else load_interactions(cfg, cfg.valid_source)
        split = splits.presplit(train, valid, test, test_input=cfg.test_input)
        parts = (train, test) if valid is None else (train, valid, test)
        return splits.align_vocab(*parts)[0], split  # the vocabulary the split uses
    for name in ("valid_source", "test_source"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"data.{name} is read only with data.split=presplit")
    if cfg.test_input != "train_valid":
        raise ConfigError("data.test_input is read only with data.split=presplit")
    data = load_interactions(cfg)
    kwargs = {
        "temporal_ratio": {"valid": cfg.valid_ratio, "test": cfg.test_ratio},
        "heldout_users": {
            "num_valid_users": cfg.valid_users,
            "num_test_users": cfg.test_users,
            "fold_in": cfg.fold_in,
        },
    }.get(cfg.split, {})
    return data, splits.make_split(data, cfg.split, **kwargs)
