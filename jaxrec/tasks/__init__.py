"""Models as tasks: a plain registry from model name to the module that builds its task.

A `Task` is what the one trainer needs from any model: a state initialiser, a pure train
step, a scorer for evaluation, and a grain dataset. Nothing here is model-specific: each
model's loss wiring, step and data live in its own module (`jaxrec.tasks.gru4rec`,
`caser`, `nextitnet`, `vae` for Mult-VAE and Mult-DAE, `cdae`, `autorec`, `cfgan`, `irgan`);
pieces two models share live in the private `_samplers`, `_sparse_rows` and `_user_rows`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from typing import Any

from jaxrec.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Task:
    """init_state(rng) -> state whose leaves may be `nn.LogicallyPartitioned` (for shardings).
    train_step(state, batch, rng) -> (state, metrics): pure; metrics are device scalars.
    score(params, users [B], hist_ids [B, L], hist_mask [B, L]) -> float32 [B, I].
    dataset(process_index, process_count) -> grain.IterDataset of numpy batch dicts; each
      carries host keys `_epoch` (int) and `_last` (True on an epoch's last batch).
    batch_axis: which axis of every batch array is the batch (sharded over `data`).
    metrics of train_step: at least `loss` (mean per example) and `examples` (count).

    Optional:
    represent(params, users [B], hist_ids [B, L], hist_mask [B, L]) -> float32 [B, D]: the
      learned user representation (`jaxrec embed`).
    item_vectors(params) -> float32 [I, D]: learned item embeddings (`jaxrec embed`).
    evaluate(params, stage) -> dict of metrics: replaces ranking evaluation for models that
      are not rankers (AutoRec's rating RMSE); `eval.metric` then names one of its keys.
    examples_per_epoch: the `examples` one epoch counts (0: not known without iterating), so
      that a throughput becomes an epoch time (`jaxrec bench`).
    history_width: the newest items of a history that `score` and `represent` read (0: all
      they are given); callers hand no more (`trainer.history_width`): fewer input shapes
      to compile and less padding to move.
    needs_order: the model reads each user's events as a sequence, so their order matters
      (the trainer warns when the data has no timestamp to order them by).
    """

    name: str
    init_state: Callable[[Any], Any]
    train_step: Callable[..., Any]
    score: Callable[..., Any]
    dataset: Callable[[int, int], Any]
    batch_axis: int = 0
    represent: Callable[..., Any] | None = None
    item_vectors: Callable[[Any], Any] | None = None
    evaluate: Callable[[Any, str], dict] | None = None
    examples_per_epoch: int = 0
    history_width: int = 0
    needs_order: bool = False


# Model name → the module under jaxrec.tasks whose `build(cfg, split)` makes its task.
MODULES = {
    "gru4rec": "gru4rec",
    "caser": "caser",
    "nextitnet": "nextitnet",
    "multvae": "vae",
    "multdae": "vae",
    "cdae": "cdae",
    "autorec": "autorec",
    "cfgan": "cfgan",
    "irgan": "irgan",
}

# Model name → its family: a label written into exported artifacts' metadata
# (`jaxrec.export`) and read by `jaxrec generate`, which needs an adversarial model.
FAMILIES = {
    "gru4rec": "sequential",
    "caser": "cnn",
    "nextitnet": "cnn",
    "multvae": "autoencoder",
    "multdae": "autoencoder",
    "cdae": "autoencoder",
    "autorec": "autoencoder",
    "cfgan": "adversarial",
    "irgan": "adversarial",
}


def build_task(cfg, split, events=None) -> Task:
    """The task for `cfg.model.name`, bound to its config and the split it trains on.

    events: the loaded `Interactions` the split came from (ids as the run maps them); AutoRec
    splits their ratings itself, and reads `cfg.data` again only when they are not given."""
    name = cfg.model.name
    if name not in MODULES:
        near = difflib.get_close_matches(name, MODULES, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(
            f"model.name={name!r} is not a known model; {hint}available: {', '.join(MODULES)}"
        )
    module = importlib.import_module(f"jaxrec.tasks.{MODULES[name]}")
    if name == "autorec":  # the one task that needs the events, not only the split
        return module.build(cfg, split, events=events)
    return module.build(cfg, split)
