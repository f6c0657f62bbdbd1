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


def load_interactions(cfg: DataConfig) -> Interactions:
    """The event log named by `cfg.source`, after the rating and k-core filters."""
    if cfg.source == "synthetic":
        s = cfg.synthetic
        data = synthetic.generate(s.num_users, s.num_items, s.mean_length, s.num_clusters, s.seed)
    elif cfg.source.startswith("download:"):
        entry = download.DATASETS.get(cfg.source.removeprefix("download:"))
        if entry is None:
            known = ", ".join(sorted(download.DATASETS))
            raise ConfigError(f"data.source={cfg.source!r}: unknown data set; known: {known}")
        folder = download.fetch(entry)
        data = formats.read_interactions(
            folder / entry.files[0],
            cfg.format or entry.format,
            columns=cfg.columns or entry.columns,
        )
    else:
        data = formats.read_interactions(
            resolve_source(cfg.source), cfg.format, columns=cfg.columns
        )
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
    data = load_interactions(cfg)
    if cfg.split != "leave_one_out":
        raise ConfigError(
            f"data.split={cfg.split!r}: sequential models train with leave_one_out for now"
        )
    return data, splits.leave_one_out(data)
