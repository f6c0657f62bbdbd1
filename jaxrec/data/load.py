"""From `DataConfig` to a `Split`: read (or generate), filter, split."""

from __future__ import annotations

from jaxrec.config import DataConfig
from jaxrec.data import formats, interactions, splits, synthetic
from jaxrec.data.interactions import Interactions
from jaxrec.errors import ConfigError


def load_interactions(cfg: DataConfig) -> Interactions:
    """The event log named by `cfg.source`, after the rating and k-core filters."""
    if cfg.source == "synthetic":
        s = cfg.synthetic
        data = synthetic.generate(s.num_users, s.num_items, s.mean_length, s.num_clusters, s.seed)
    else:
        data = formats.read_interactions(cfg.source, cfg.format, columns=cfg.columns)
    if cfg.min_rating is not None:
        data = interactions.filter_rating(data, cfg.min_rating)
    if cfg.min_user_events or cfg.min_item_events:
        data = interactions.filter_k_core(data, cfg.min_user_events, cfg.min_item_events)
    return data


def load_split(cfg: DataConfig) -> tuple[Interactions, splits.Split]:
    data = load_interactions(cfg)
    if cfg.split != "leave_one_out":
        raise ConfigError(
            f"data.split={cfg.split!r}: sequential models train with leave_one_out for now"
        )
    return data, splits.leave_one_out(data)
