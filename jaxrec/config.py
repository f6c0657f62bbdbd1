"""Configs: YAML files read into frozen, typed dataclasses.

`load_config(path, overrides)` reads YAML with `yaml.safe_load`, applies `--set a.b=c`
overrides (values parsed as YAML scalars), and builds `Config`. An unknown key is an error
that names the file, the key and the nearest valid key. This module never imports jax.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from jaxrec.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The embedded default data set (see `jaxrec.data.synthetic`)."""

    num_users: int = 2000
    num_items: int = 500
    mean_length: float = 20.0
    num_clusters: int = 10
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the events come from, how they are filtered and split."""

    # "synthetic", "shared:<path>", "download:<name>" or a file path (see jaxrec.data.load)
    source: str = "synthetic"
    format: str | None = None  # reader name; None detects it from the file
    columns: dict[str, str] | None = (
        None  # CSV/Parquet column mapping {user, item, rating, timestamp}
    )
    min_rating: float | None = None
    min_user_events: int = 0
    min_item_events: int = 0
    split: str = "leave_one_out"
    synthetic: SyntheticConfig = SyntheticConfig()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """GRU4Rec (Hidasi & Karatzoglou, CIKM 2018). Other families add their own fields later."""

    name: str = "gru4rec"
    layers: tuple[int, ...] = (100,)
    embedding: int = 0  # >0: separate input embedding of this size; 0: see constrained_embedding
    constrained_embedding: bool = (
        True  # input embedding = output item embedding (needs embedding=0)
    )
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.0
    final_act: str = "linear"  # linear | tanh | relu | elu-<alpha> | leaky-<alpha>
    compute_dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class LossConfig:
    kind: str = "cross-entropy"  # cross-entropy | bpr-max | top1-max
    n_sample: int = 2048  # extra negatives shared across the mini-batch
    sample_alpha: float = 0.5  # negatives ∝ popularity ** alpha
    bpreg: float = 1.0  # BPR-max score regularisation
    logq: float = 0.0  # logQ correction weight for cross-entropy


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: str = "adagrad"  # adagrad | adam | adamw | sgd
    learning_rate: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | cosine | linear
    warmup_steps: int = 0
    clip_norm: float | None = None
    sparse: bool = True  # adagrad: update item tables only where a batch touches them


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    steps_per_call: int = 16  # mini-batches fused into one compiled call (lax.scan)
    seed: int = 0
    shuffle: bool = True
    eval_every: int = 1  # epochs
    patience: int = 0  # epochs without improvement before stopping; 0 = never stop early
    checkpoint_every: int = 1  # epochs
    keep_checkpoints: int = 2
    progress: bool | None = None  # None = only when stdout is a terminal


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Protocol of every reported number: full ranking over the catalogue and/or SASRec sampled."""

    protocols: tuple[str, ...] = ("full", "sampled")
    ks: tuple[int, ...] = (10, 20)
    metric: str = "ndcg@10"  # early-stopping and best-checkpoint metric (full ranking, validation)
    num_negatives: int = 100
    chunk_size: int = 1024
    max_history: int = 200
    recall_denominator: str = "min"  # min: min(K, |T|) (Mult-VAE); all: |T|
    baselines: tuple[str, ...] = ("popularity", "markov")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = -1  # -1: every local device not used by `model`
    model: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    mesh: MeshConfig = MeshConfig()


def to_dict(cfg: Any) -> dict:
    """The config as plain YAML-able data (tuples become lists)."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (the embedded default when `path` is None) and apply overrides."""
    path = DEFAULT_CONFIG if path is None else path
    where = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read config: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections")
    lines = _key_lines(text)
    overridden = {_apply_override(raw, item) for item in overrides}
    try:
        cfg = _build(Config, raw, where, "")
    except ConfigError as e:
        # Point at the line of the offending key when it came from the file.
        key = getattr(e, "key", None)
        if key in overridden:
            raise ConfigError(str(e).replace(f"{where}:", "--set", 1)) from None
        if key in lines:
            raise ConfigError(str(e).replace(f"{where}:", f"{where}:{lines[key]}:", 1)) from None
        raise
    if cfg.data.source != "synthetic" and not _has_scheme(cfg.data.source):
        # Data paths in a config file are relative to that file, so configs/ can be moved.
        src = Path(cfg.data.source).expanduser()
        if not src.is_absolute():
            src = (Path(path).parent / src).resolve()
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source=str(src)))
    return cfg


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key → 1-based line of that key in the YAML text."""
    out: dict[str, int] = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                name = f"{prefix}{k.value}"
                out[name] = k.start_mark.line + 1
                walk(v, name + ".")

    try:
        walk(yaml.compose(text), "")
    except yaml.YAMLError:
        pass
    return out


def _error(message: str, key: str) -> ConfigError:
    err = ConfigError(message)
    err.key = key
    return err


def _has_scheme(source: str) -> bool:
    """`shared:` and `download:` sources are resolved by `jaxrec.data.load`, not here."""
    return source.split(":", 1)[0] in ("shared", "download")


def _apply_override(raw: dict, item: str) -> str:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=3")
    parts = key.strip().split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {p!r} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:
        node[parts[-1]] = value
    return ".".join(parts)


def _build(cls, raw: Any, where: str, prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or 'config'}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{prefix}{near[0]}'?" if near else ""
            valid = ", ".join(fields)
            raise _error(
                f"{where}: unknown key '{prefix}{key}'{hint} (valid keys here: {valid})",
                f"{prefix}{key}",
            )
        kwargs[key] = _coerce(hints[key], value, where, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(tp, value, where: str, key: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where, key)
            except ConfigError as e:
                errors.append(str(e))
        raise _error(errors[0], key)
    if origin is tuple:
        (elem, *_) = typing.get_args(tp)
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_coerce(elem, v, where, key) for v in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _error(f"{where}: '{key}' must be a mapping, got {value!r}", key)
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    name = getattr(tp, "__name__", str(tp))
    raise _error(f"{where}: '{key}' must be {name}, got {value!r}", key)
