"""Configs: YAML files read into frozen, typed dataclasses.

`load_config(path, overrides)` reads YAML with `yaml.safe_load`, applies `--set a.b=c`
overrides (values parsed as YAML scalars), and builds `Config`. An unknown key is an error
that names the file, the key and the nearest valid key; a number outside its field's range
(`ranged`) one that names the key, the value and the range. This module never imports jax.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from jaxrec.errors import ConfigError


def ranged(default: Any, allowed: str, nonempty: bool = False) -> Any:
    """A field whose value (each element, for a tuple) must lie in `allowed`, checked by
    `load_config`: ">= 1", "> 0", an interval "[0, 1)" (a bracket closes an end, a
    parenthesis opens it), a value "-1", or alternatives joined by " or ". `nonempty`: a
    tuple that needs at least one element."""
    return dataclasses.field(default=default, metadata={"range": allowed, "nonempty": nonempty})


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The embedded default data set (see `jaxrec.data.synthetic`)."""

    num_users: int = ranged(2000, ">= 1")
    num_items: int = ranged(500, ">= 1")
    mean_length: float = ranged(20.0, ">= 0")
    num_clusters: int = ranged(10, ">= 1")
    seed: int = ranged(0, ">= 0")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the events come from, how they are filtered and split.

    split: leave_one_out (SASRec/Caser) | temporal_ratio (valid_ratio, test_ratio of each
    user's events, chronological) | heldout_users (Mult-VAE: valid_users and test_users
    held out, fold_in of each held-out user's events shown) | presplit (`source` is the train
    file, `valid_source` (optional) and `test_source` the others; filters apply to each).
    """

    # "synthetic", "shared:<path>", "download:<name>" or a file path (see jaxrec.data.load)
    source: str = "synthetic"
    format: str | None = None  # reader name; None detects it from the file
    columns: dict[str, str] | None = (
        None  # CSV/Parquet column mapping {user, item, rating, timestamp}
    )
    min_rating: float | None = None
    min_user_events: int = ranged(0, ">= 0")
    min_item_events: int = ranged(0, ">= 0")
    split: Literal["leave_one_out", "temporal_ratio", "heldout_users", "presplit"] = "leave_one_out"
    valid_source: str | None = None  # presplit only
    test_source: str | None = None  # presplit only
    # presplit only: the test stage's model input. train_valid (default): train + valid rows;
    # train: the train rows only, as DiffRec evaluates; train and valid items are excluded
    # from the ranking either way.
    test_input: Literal["train_valid", "train"] = "train_valid"
    valid_ratio: float = ranged(0.1, "[0, 1)")  # temporal_ratio only
    test_ratio: float = ranged(0.1, "[0, 1)")  # temporal_ratio only
    valid_users: int = ranged(0, ">= 0")  # heldout_users only
    test_users: int = ranged(0, ">= 0")  # heldout_users only
    fold_in: float = ranged(0.8, "(0, 1)")  # heldout_users only
    # Refit: append each user's validation targets to training and run no validation; train
    # the epoch count a validation run picked, and the last parameters are tested (same test
    # rows). Not for heldout_users.
    train_on_valid: bool = False
    synthetic: SyntheticConfig = SyntheticConfig()


@dataclasses.dataclass(frozen=True)
class GRU4RecConfig:
    """GRU4Rec (Hidasi & Karatzoglou, CIKM 2018), as in the official code's parameters."""

    layers: tuple[int, ...] = ranged((100,), ">= 1", nonempty=True)
    # >0: separate input embedding of this size; 0: see constrained_embedding.
    embedding: int = ranged(0, ">= 0")
    constrained_embedding: bool = (
        True  # input embedding = output item embedding (needs embedding=0)
    )
    dropout_embed: float = ranged(0.0, "[0, 1)")
    dropout_hidden: float = ranged(0.0, "[0, 1)")
    final_act: str = "linear"  # linear | tanh | relu | elu-<alpha> | leaky-<alpha> | softmax


@dataclasses.dataclass(frozen=True)
class CaserConfig:
    """Caser (Tang & Wang, WSDM 2018); defaults from the paper and its official code."""

    embedding: int = ranged(50, ">= 1")  # d
    length: int = ranged(5, ">= 1")  # L: items in the input window
    targets: int = ranged(3, ">= 1")  # T: next items predicted per window
    horizontal_filters: int = ranged(16, ">= 0")  # n_h per height 1..L
    vertical_filters: int = ranged(4, ">= 0")  # n_v
    dropout: float = ranged(0.5, "[0, 1)")
    # On the input window's item embeddings (not in the paper).
    dropout_embed: float = ranged(0.0, "[0, 1)")
    dropout_user: float = ranged(0.0, "[0, 1)")  # on the user embedding P_u (not in the paper)
    conv_activation: Literal["relu", "tanh", "sigmoid", "identity"] = (
        "relu"  # activation of the horizontal convolutions (phi_c)
    )
    fc_activation: Literal["relu", "tanh", "sigmoid", "identity"] = (
        "relu"  # activation of the fully-connected layer (phi_a)
    )
    negatives: int = ranged(3, ">= 0")  # uniform negatives per target (loss "bce")
    tied: bool = False  # RecBole's output layer: fc2 to d, scored against the input table
    # "bce": the paper's binary cross-entropy on targets and sampled negatives; "softmax":
    # cross-entropy of a softmax over every item per target (RecBole's Caser loss);
    # "sampled-softmax": over loss.n_sample negatives ∝ count^loss.sample_alpha shared by
    # the mini-batch, minus loss.logq × logQ (NextItNet's sampled loss).
    loss: Literal["bce", "softmax", "sampled-softmax"] = "bce"
    # Which windows an epoch trains on: "official" (graytowne/caser_pytorch: every L + T
    # consecutive items, so a user's first L items are never targets) or "every-item"
    # (RecBole: each training item after the first starts a window's targets, the input
    # its up to L predecessors, left-padded; the targets are cut at the sequence's end).
    windows: Literal["official", "every-item"] = "official"


@dataclasses.dataclass(frozen=True)
class NextItNetConfig:
    """NextItNet (Yuan et al., WSDM 2019): residual blocks of dilated causal convolutions."""

    embedding: int = ranged(64, ">= 1")  # channels
    # One residual block each.
    dilations: tuple[int, ...] = ranged((1, 2, 4, 8, 1, 2, 4, 8), ">= 1", nonempty=True)
    kernel_size: int = ranged(3, ">= 1")
    # Training sequences: each user's last max_length + 1 items.
    max_length: int = ranged(50, ">= 1")
    # Shorter training widths a mini-batch of similar-length users may take (see
    # jaxrec.data.windows); () = every mini-batch max_length wide. With buckets the loss is
    # a batch's sum over positions ÷ the mean positions per batch (a constant), not its mean.
    length_buckets: tuple[int, ...] = ranged((), ">= 1")
    dropout: float = ranged(0.0, "[0, 1)")  # on every residual branch
    # On the input item embeddings (as GRU4Rec's dropout_embed).
    dropout_embed: float = ranged(0.0, "[0, 1)")
    tied: bool = False  # output scores against the input table (RecBole) instead of W
    # What feeds the output layer: "relu" (the official code: ReLU of the last block) or
    # "linear" (RecBole: a C→C dense layer, no activation).
    head: Literal["relu", "linear"] = "relu"
    # On the scores before loss.kind=bpr-max (GRU4Rec's final_act, e.g. elu-0.5).
    final_act: str = "linear"


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Mult-VAE and Mult-DAE (Liang et al., WWW 2018; dawenl/vae_cf)."""

    # Encoder I→600→200; the decoder mirrors it.
    layers: tuple[int, ...] = ranged((600, 200), ">= 1", nonempty=True)
    dropout: float = ranged(0.5, "[0, 1)")  # on the L2-normalised input
    anneal_cap: float = ranged(0.2, ">= 0")  # Mult-VAE: beta grows linearly to this cap
    # Updates for beta to go from 0 to 1 (vae_cf total_anneal_steps).
    anneal_steps: int = ranged(200000, ">= 0")
    l2: float = ranged(0.0, ">= 0")  # L2 on the weights (vae_cf: 0.01 / batch scaling for Mult-DAE)


@dataclasses.dataclass(frozen=True)
class CDAEConfig:
    """CDAE (Wu et al., WSDM 2016): denoising autoencoder with a user node."""

    hidden: int = ranged(50, ">= 1")
    corruption: float = ranged(0.5, "[0, 1)")  # input dropout rate q
    hidden_activation: Literal["sigmoid", "tanh", "relu", "identity"] = "sigmoid"
    output_activation: Literal["sigmoid", "tanh", "relu", "identity"] = "sigmoid"
    loss: Literal["logistic", "squared"] = "logistic"
    negatives: int = ranged(0, ">= 0")  # sampled negatives per positive; 0 = full output
    l2: float = ranged(0.0, ">= 0")


@dataclasses.dataclass(frozen=True)
class AutoRecConfig:
    """I-AutoRec (Sedhain et al., WWW 2015) on explicit ratings."""

    hidden: int = ranged(500, ">= 1")
    l2: float = ranged(1.0, ">= 0")  # lambda


@dataclasses.dataclass(frozen=True)
class CFGANConfig:
    """CFGAN (Chae et al., CIKM 2018): vector-wise adversarial CF with ZR and PM.

    Defaults: the authors' ML-100K setting (Bigdasgit/CFGAN parameters.py). Optimizers: the
    generator uses `optim.*`, the discriminator Adam with `d_learning_rate`.
    """

    mode: Literal["item", "user"] = (
        "item"  # item: rows are item vectors over users (official code); user: paper
    )
    generator: tuple[int, ...] = ranged((400,), ">= 1")  # sigmoid hidden layers of G
    discriminator: tuple[int, ...] = ranged((125,), ">= 1")  # sigmoid hidden layers of D
    # S_ZR: share of a row's unobserved entries reconstructed as 0.
    zr_ratio: float = ranged(0.7, "[0, 1]")
    # S_PM: share of a row's unobserved entries left unmasked (PM).
    pm_ratio: float = ranged(0.7, "[0, 1]")
    # The official code reseeds numpy with the same time-based seed before the ZR and the PM
    # draw, so with equal ratios both pick the same entries; true: PM reuses ZR's entries
    # (needs pm_ratio == zr_ratio), false: independent draws as the paper describes.
    shared_zr_pm: bool = False
    # The official trainer calls `np.random.seed(int(time.time()))` before every row's draw,
    # so all rows sampled within one second (a whole round's sampling loop on ML-100K)
    # replay one random stream: rows with as many unobserved entries pick the same
    # positions in their unobserved lists, and ZR and PM are nested (the same set at equal
    # ratios). true: emulate that, one shared uniform per position per round; false:
    # independent draws per row, as the paper and the ECIR 2022 port (docs/models/cfgan.md
    # compares the two).
    reseeded_draws: bool = False
    zr_coefficient: float = ranged(0.03, ">= 0")  # alpha
    g_steps: int = ranged(4, ">= 1")  # G passes over each mini-batch per train step
    d_steps: int = ranged(2, ">= 1")  # D passes over each mini-batch per train step
    g_batch_size: int = ranged(32, ">= 1")  # G mini-batch (divides train.batch_size)
    d_batch_size: int = ranged(64, ">= 1")  # D mini-batch (divides train.batch_size)
    g_l2: float = ranged(0.001, ">= 0")  # reg_G on Σ w²/2 of G's weights and biases
    d_l2: float = ranged(0.0, ">= 0")  # reg_D
    d_learning_rate: float = ranged(1e-4, "> 0")


@dataclasses.dataclass(frozen=True)
class IRGANConfig:
    """IRGAN item recommendation (Wang et al., SIGIR 2017; geek-ai/irgan cf_gan.py).

    The first `pretrain_epochs` epochs of `train.epochs` pretrain both players with BPR and
    dynamic negative sampling (cf_dns.py; here Adam on the mean loss over a batch of users);
    the others play the minimax game with SGD, as the official code.
    """

    embedding: int = ranged(5, ">= 1")
    init_delta: float = ranged(0.05, "> 0")
    temperature: float = ranged(0.2, "> 0")  # of G's softmax when sampling negatives for D
    # Importance sampling: pn = (1-λ) p_G + λ uniform(positives).
    sample_lambda: float = ranged(0.2, "[0, 1]")
    pretrain_epochs: int = ranged(10, ">= 0")  # BPR-MF pretraining of both players, by jaxrec
    # The official game loads only G's pretrained model; D starts from its random init.
    pretrain_discriminator: bool = True
    # After pretraining: epochs of D updates only (G frozen).
    d_warmup_epochs: int = ranged(0, ">= 0")
    pretrain_learning_rate: float = ranged(0.01, "> 0")  # Adam
    pretrain_l2: float = ranged(0.1, ">= 0")
    dns_candidates: int = ranged(5, ">= 1")  # DNS: the best-scored of this many uniform negatives
    g_steps: int = ranged(1, ">= 1")  # G updates per mini-batch per train step
    # D updates per mini-batch (official: 100 D vs 50 G epochs per round).
    d_steps: int = ranged(2, ">= 1")
    g_learning_rate: float = ranged(1e-3, "> 0")
    d_learning_rate: float = ranged(1e-3, "> 0")
    g_l2: float = ranged(0.0, ">= 0")
    l2: float = ranged(0.1, ">= 0")  # D's L2 per example on its user, item rows and item bias


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """`name` picks the model; only its section is read, the others keep their defaults.

    name: gru4rec | caser | nextitnet | multvae | multdae | cdae | autorec | cfgan | irgan
    (multvae and multdae both read `vae`).
    """

    name: Literal[
        "gru4rec", "caser", "nextitnet", "multvae", "multdae", "cdae", "autorec", "cfgan", "irgan"
    ] = "gru4rec"
    compute_dtype: str = "float32"
    gru4rec: GRU4RecConfig = GRU4RecConfig()
    caser: CaserConfig = CaserConfig()
    nextitnet: NextItNetConfig = NextItNetConfig()
    vae: VAEConfig = VAEConfig()
    cdae: CDAEConfig = CDAEConfig()
    autorec: AutoRecConfig = AutoRecConfig()
    cfgan: CFGANConfig = CFGANConfig()
    irgan: IRGANConfig = IRGANConfig()


@dataclasses.dataclass(frozen=True)
class LossConfig:
    kind: Literal["cross-entropy", "bpr-max", "top1-max"] = "cross-entropy"
    n_sample: int = ranged(2048, ">= 0")  # extra negatives shared across the mini-batch
    sample_alpha: float = ranged(0.5, ">= 0")  # negatives ∝ popularity ** alpha
    bpreg: float = ranged(1.0, ">= 0")  # BPR-max score regularisation
    logq: float = ranged(0.0, ">= 0")  # logQ correction weight for cross-entropy


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: Literal["adagrad", "adam", "adamw", "sgd"] = "adagrad"
    learning_rate: float = ranged(0.05, "> 0")
    momentum: float = ranged(0.0, "[0, 1)")
    weight_decay: float = ranged(0.0, ">= 0")
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = ranged(0, ">= 0")
    clip_norm: float | None = ranged(None, ">= 0")
    sparse: bool = True  # update item tables only where a batch touches them (row-wise)
    # row-wise optimizer per item table: adagrad | lazy_adam | dense; unset tables follow
    # `name` (adagrad → adagrad, adam → lazy_adam, others dense). GRU4Rec: weight decay
    # makes every table dense. Caser/NextItNet: list every table (adagrad | lazy_adam);
    # weight decay is then an L2 term on the rows a step touches.
    tables: dict[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = ranged(5, ">= 0")
    batch_size: int = ranged(64, ">= 1")
    steps_per_call: int = ranged(16, ">= 1")  # mini-batches fused into one compiled call (lax.scan)
    seed: int = ranged(0, ">= 0")
    shuffle: bool = True
    eval_every: int = ranged(1, ">= 1")  # epochs
    # Epochs without improvement before stopping; 0 = never stop early.
    patience: int = ranged(0, ">= 0")
    checkpoint_every: int = ranged(1, ">= 1")  # epochs
    keep_checkpoints: int = ranged(2, ">= 1")
    progress: bool | None = None  # None = only when stdout is a terminal
    nonfinite: Literal["stop", "skip"] = (
        "stop"  # non-finite loss/metrics: stop (naming the step) | skip the update
    )
    # SIGTERM → checkpoint and exit 143 within this time.
    preempt_grace_seconds: float = ranged(25.0, "> 0")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Protocol of every reported number: full ranking over the catalogue and/or SASRec sampled."""

    protocols: tuple[Literal["full", "sampled"], ...] = ("full", "sampled")
    ks: tuple[int, ...] = ranged((10, 20), ">= 1", nonempty=True)
    metric: str = "ndcg@10"  # early-stopping and best-checkpoint metric (full ranking, validation)
    # Where that metric is read: valid, or test: the protocol of CFGAN's and IRGAN's own
    # code, which keeps the epoch best on the test set. Optimistic; only for reproducing
    # those papers' figures; the last epoch's test figures are reported beside it.
    select_on: Literal["valid", "test"] = "valid"
    num_negatives: int = ranged(100, ">= 1")
    # Users scored per evaluation chunk. Small enough that a chunk's score block (chunk x
    # items, float32) stays cache- and allocator-friendly on a large catalogue, where a
    # bigger block gets fresh pages on every chunk under glibc's default malloc; small
    # catalogues (the ML-1M autoencoder configs) can take larger chunks.
    chunk_size: int = ranged(256, ">= 1")
    # Newest history items handed to a model (fewer where it reads fewer: Caser's L,
    # NextItNet's max_length; `trainer.history_width`).
    max_history: int = ranged(200, ">= 1")
    recall_denominator: Literal["min", "all"] = "min"  # min: min(K, |T|) (Mult-VAE); all: |T|
    baselines: tuple[Literal["popularity", "markov", "ease"], ...] = ("popularity", "markov")
    ease_l2: float = ranged(500.0, "> 0")  # EASE's lambda (Steck, WWW 2019)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = ranged(-1, "-1 or >= 1")  # -1: every local device not used by `model`
    model: int = ranged(1, ">= 1")


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


CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


def config_names() -> dict[str, Path]:
    """{name: path} of the configs shipped with jaxrec, addressable by name (`gru4rec_games`).

    An installed package carries them in jaxrec/configs/ (pyproject.toml's package-dir maps
    the repository's configs/ there); a source checkout reads the repository's configs/.
    """
    repo = Path(__file__).parents[1]
    dirs = [CONFIG_DIR, repo / "configs"] if (repo / "pyproject.toml").is_file() else [CONFIG_DIR]
    return {p.stem: p for d in dirs for p in sorted(d.glob("*.yaml"))}


def find_config(spec: str | Path) -> Path:
    """A config file's path, or a shipped config's name (`gru4rec_games`) → its path."""
    path = Path(spec)
    if path.exists() or len(path.parts) != 1:
        return path
    names = config_names()
    name = path.name.removesuffix(".yaml")
    if name not in names:
        raise ConfigError(
            f"{spec}: no such config file, nor a shipped config name; "
            f"the shipped configs are: {', '.join(sorted(names))}"
        )
    return names[name]


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (a path, a shipped config's name, or the embedded default when
    `path` is None) and apply overrides."""
    path = DEFAULT_CONFIG if path is None else find_config(path)
    where = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read config: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        raw = yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError) as e:  # ValueError: an impossible date (2020-13-45)
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections")
    lines = _key_lines(text)
    overridden = {_apply_override(raw, item) for item in overrides}
    try:
        cfg = _build(Config, raw, where, "")
        _check_choices(cfg, where)
    except ConfigError as e:
        # Point at the line of the offending key when it came from the file.
        key = getattr(e, "key", None)
        if key in overridden:
            raise ConfigError(str(e).replace(f"{where}:", "--set", 1)) from None
        if key in lines:
            raise ConfigError(str(e).replace(f"{where}:", f"{where}:{lines[key]}:", 1)) from None
        raise
    # Data paths in a config file are relative to that file, so configs/ can be moved; those
    # given with --set are relative to the working directory, as any command-line path.
    paths = {
        name: _resolve_path(value, Path() if f"data.{name}" in overridden else Path(path).parent)
        for name in ("source", "valid_source", "test_source")
        if (value := getattr(cfg.data, name)) is not None
    }
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **paths))


def _resolve_path(source: str, base: Path) -> str:
    if source == "synthetic" or _has_scheme(source):
        return source
    src = Path(source).expanduser()
    return str(src if src.is_absolute() else (base / src).resolve())


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
    except (yaml.YAMLError, ValueError):  # ValueError: an impossible date, e.g. 2020-13-45
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
        if "range" in fields[key].metadata and kwargs[key] is not None:
            _check_range(fields[key], kwargs[key], value, where, prefix + key)
    return cls(**kwargs)


def _check_choices(cfg: Config, where: str) -> None:
    """Combinations of fields that no model can train with, each a ConfigError naming the
    key it blames; checked only for the model `model.name` picks."""
    m, name, loss = cfg.model, cfg.model.name, cfg.loss
    if name == "gru4rec" and m.gru4rec.constrained_embedding and m.gru4rec.embedding > 0:
        raise _error(
            f"{where}: model.gru4rec.constrained_embedding needs model.gru4rec.embedding=0",
            "model.gru4rec.constrained_embedding",
        )
    if name == "caser" and m.caser.loss == "sampled-softmax" and loss.n_sample < 1:
        raise _error(
            f"{where}: model.caser.loss=sampled-softmax needs loss.n_sample ≥ 1", "loss.n_sample"
        )
    if name == "nextitnet":
        _check_nextitnet_loss(loss, where)
    if name == "cdae" and m.cdae.loss == "logistic" and m.cdae.output_activation != "sigmoid":
        raise _error(
            f"{where}: model.cdae.loss=logistic needs model.cdae.output_activation=sigmoid",
            "model.cdae.output_activation",
        )
    if name == "cfgan":
        _check_cfgan_batches(m.cfgan, cfg.train.batch_size, where)


def _check_nextitnet_loss(loss, where: str) -> None:
    """NextItNet trains with the full softmax or BPR-max over sampled negatives only."""
    if loss.kind not in ("cross-entropy", "bpr-max"):
        raise _error(
            f"{where}: nextitnet: loss.kind={loss.kind!r}; use cross-entropy or bpr-max",
            "loss.kind",
        )
    if loss.kind == "bpr-max" and not loss.n_sample:
        raise _error(
            f"{where}: nextitnet: loss.kind=bpr-max needs sampled negatives (loss.n_sample)",
            "loss.kind",
        )


def _check_cfgan_batches(c, batch: int, where: str) -> None:
    """CFGAN's generator and discriminator sub-batches tile the batch; a shared ZR/PM draw
    needs one ratio."""
    for field in ("g_batch_size", "d_batch_size"):
        if batch % getattr(c, field):
            raise _error(
                f"{where}: model.cfgan.{field} must divide train.batch_size={batch}",
                f"model.cfgan.{field}",
            )
    if c.shared_zr_pm and c.zr_ratio != c.pm_ratio:
        raise _error(
            f"{where}: model.cfgan.shared_zr_pm needs pm_ratio == zr_ratio (one draw)",
            "model.cfgan.shared_zr_pm",
        )


def _check_range(field: dataclasses.Field, value: Any, raw: Any, where: str, key: str) -> None:
    """Raise a ConfigError naming `key`, the value as written (`raw`) and the field's range
    (`ranged`) where the coerced `value` (each element of a tuple) lies outside it."""
    allowed = field.metadata["range"]
    if field.metadata["nonempty"] and not value:
        example = list(field.default)
        raise _error(f"{where}: {key}=[]: needs at least one value, e.g. {example}", key)
    if isinstance(raw, list | tuple):
        items = [(f"{key}[{i}]", v, r) for i, (v, r) in enumerate(zip(value, raw, strict=True))]
    else:  # a scalar, or a tuple's one element written without brackets
        items = [(key, value[0] if isinstance(value, tuple) else value, raw)]
    for name, v, r in items:
        if isinstance(v, int) and not -(2**63) <= v < 2**63:  # numpy and XLA take int64
            raise _error(f"{where}: {name}={r}: must be {_said(allowed)} and below 2**63", key)
        if not any(_within(v, part) for part in allowed.split(" or ")):
            raise _error(f"{where}: {name}={r}: must be {_said(allowed)}", key)


def _within(x: float, allowed: str) -> bool:
    """Whether x lies in one range of `ranged`'s forms (">= 1", "> 0", "[0, 1)", "-1")."""
    if allowed[0] in "[(":
        lo, hi = (float(b) for b in allowed[1:-1].split(","))
        above = lo <= x if allowed[0] == "[" else lo < x
        return above and (x <= hi if allowed[-1] == "]" else x < hi)
    if allowed.startswith(">="):
        return x >= float(allowed[2:])
    if allowed.startswith(">"):
        return x > float(allowed[1:])
    return x == float(allowed)


def _said(allowed: str) -> str:
    return f"in {allowed}" if allowed[0] in "[(" else allowed


def _coerce(tp, value, where: str, key: str):
    """`value` read from YAML or --set, checked against the field's type `tp` → the value."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, key + ".")
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(tp, value, where, key)
    if origin is Literal:
        return _coerce_choice(tp, value, where, key)
    if origin is tuple:
        (elem, *_) = typing.get_args(tp)
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_coerce(elem, v, where, key) for v in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _error(f"{where}: '{key}' must be a mapping, got {value!r}", key)
        return {str(k): str(v) for k, v in value.items()}
    return _coerce_scalar(tp, value, where, key)


def _coerce_union(tp, value, where: str, key: str):
    """The first member of `X | Y | None` that accepts `value`, else the first error."""
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


def _coerce_choice(tp, value, where: str, key: str) -> str:
    """`value` if it is one of the `Literal[...]` choices, else an error naming the nearest."""
    choices = typing.get_args(tp)
    if isinstance(value, str) and value in choices:
        return value
    near = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise _error(f"{where}: {key}={value!r}: {hint}use one of {', '.join(choices)}", key)


def _as_float(value):
    """float(value) for numbers and YAML 1.1's dotless '1e-3' strings, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (OverflowError, ValueError):  # an int beyond float's range, or not a number
        return None


def _coerce_scalar(tp, value, where: str, key: str):
    """bool, int, float or str `value` as `tp`; no silent bool↔number conversions."""
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and (number := _as_float(value)) is not None:
        return number
    if tp is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    name = getattr(tp, "__name__", str(tp))
    raise _error(f"{where}: '{key}' must be {name}, got {value!r}", key)
