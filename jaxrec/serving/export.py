"""Write a trained model as a compiled scorer artifact that any process with jax can call.

An artifact is a directory:

  recommend.jax   jax.export of recommend(params, users [b], hist_ids [b, L], hist_mask [b, L],
                  exclude_ids [b, e], exclude_mask [b, e]) -> (ids int32 [b, K], scores f32 [b, K])
  score.jax       jax.export of score(params, users [b], hist_ids [b, L], hist_mask [b, L])
                  -> float32 [b, I], the same scores training evaluates
  params.npz      the parameters, one array per leaf keyed by its '/'-joined path (no pickle):
                  an explicit input, so the module holds code and no weights
  items.npy       raw item ids (unicode; index = dense id); users.npy likewise
  metadata.json   model, family, config, shapes, K, versions, calling convention, platforms,
                  and the sha256 of every other file (`jaxrec.serving.scorer` checks them on load)

b and e are symbolic (any batch size, any number of excluded items); L (history length) and
K (largest top-K) are fixed at export time. Both functions are lowered for CPU and CUDA in
one module each (`platforms`), for one device: a scorer is replicated, never sharded.
`jaxrec.serving.scorer.load_scorer` reads it with jax and numpy only.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import export

import jaxrec
from jaxrec import metrics
from jaxrec.config import to_dict
from jaxrec.errors import ConfigError, JaxrecError

FORMAT_VERSION = 1
PLATFORMS = ("cpu", "cuda")


def flatten_params(params) -> dict[str, np.ndarray]:
    """Nested dict of arrays → {'a/b/c': numpy array}; the scorer rebuilds the nesting."""
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                if "/" in str(key):
                    raise JaxrecError(f"parameter name {key!r} contains '/'; cannot export it")
                walk(value, f"{prefix}{key}/")
        else:
            flat[prefix.rstrip("/")] = np.asarray(jax.device_get(node))

    walk(jax.tree.map(lambda x: x, params), "")
    return flat


def _recommend_fn(score, k: int):
    def recommend(params, users, hist_ids, hist_mask, exclude_ids, exclude_mask):
        scores = score(params, users, hist_ids, hist_mask).astype(jnp.float32)
        scores = metrics.mask_items(scores, exclude_ids, exclude_mask)
        values, ids = jax.lax.top_k(scores, k)
        # Slots past the last candidate (k larger than what is left) hold id -1.
        return jnp.where(jnp.isfinite(values), ids, -1).astype(jnp.int32), values

    return recommend


def _uses_users(score, params, history: int, num_users: int) -> bool:
    """Whether the model's scores depend on the user id (Caser, CDAE, IRGAN: a user embedding)."""
    if num_users < 2:
        return False
    ids = jnp.zeros((2, history), jnp.int32)
    mask = jnp.zeros((2, history), bool).at[:, -1].set(True)
    out = jax.jit(score)(params, jnp.array([0, 1], jnp.int32), ids, mask)
    return not bool(jnp.allclose(out[0], out[1]))


def export_scorer(
    out: str | Path,
    *,
    score,
    params,
    item_vocab: np.ndarray,
    user_vocab: np.ndarray,
    model_name: str,
    family: str,
    config: dict,
    history: int,
    max_k: int = 100,
    default_k: int = 10,
    force: bool = False,
) -> Path:
    """Write the artifact for `score(params, users, hist_ids, hist_mask) -> [B, I]` to `out`.

    An existing `out` is replaced only with force=True, and only after the new artifact is
    complete: a failed export never leaves a half-written directory or loses the old one.
    """
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; choose another --out or pass --force to replace it")
    params = jax.device_get(params)
    num_items = len(item_vocab)
    k = min(max_k, num_items)
    if not 0 < default_k <= k:
        raise ConfigError(f"default k must be in 1..{k}, got {default_k}")
    if history < 1:
        raise ConfigError(f"history length must be at least 1, got {history}")
    param_specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    b, e = export.symbolic_shape("b, e")
    users = jax.ShapeDtypeStruct((b,), jnp.int32)
    hist = (jax.ShapeDtypeStruct((b, history), jnp.int32), jax.ShapeDtypeStruct((b, history), bool))
    excl = (jax.ShapeDtypeStruct((b, e), jnp.int32), jax.ShapeDtypeStruct((b, e), bool))
    lowered = {
        "score.jax": export.export(jax.jit(score), platforms=PLATFORMS)(param_specs, users, *hist),
        "recommend.jax": export.export(jax.jit(_recommend_fn(score, k)), platforms=PLATFORMS)(
            param_specs, users, *hist, *excl
        ),
    }
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        for name, exp in lowered.items():
            (tmp / name).write_bytes(exp.serialize())
        np.savez(tmp / "params.npz", **flatten_params(params))
        np.save(tmp / "items.npy", np.asarray(item_vocab).astype(str), allow_pickle=False)
        np.save(tmp / "users.npy", np.asarray(user_vocab).astype(str), allow_pickle=False)
        exp = lowered["recommend.jax"]
        meta = {
            "format_version": FORMAT_VERSION,
            "model": model_name,
            "family": family,
            "config": config,
            "num_items": num_items,
            "num_users": len(user_vocab),
            "history_length": history,
            "max_k": k,
            "default_k": default_k,
            "uses_user_ids": _uses_users(score, params, history, len(user_vocab)),
            "platforms": list(exp.platforms),
            "calling_convention_version": exp.calling_convention_version,
            "jax_version": jax.__version__,
            "jaxlib_version": _jaxlib_version(),
            "jaxrec_version": jaxrec.__version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "sha256": {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp.iterdir())
            },
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, default=_plain))
        tmp.chmod(0o755)
        if out.exists():  # force: swap in the complete new artifact, then drop the old one
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            out.rename(old / out.name)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _jaxlib_version() -> str:
    import jaxlib

    return getattr(jaxlib, "__version__", None) or jaxlib.version.__version__


def _plain(v):
    if dataclasses.is_dataclass(v):
        return to_dict(v)
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def export_run(run, params, out, *, max_k: int = 100, history: int | None = None, force=False):
    """Export a trained run (`trainer.prepare` + its best params) → the artifact path."""
    from jaxrec import trainer
    from jaxrec.tasks import FAMILIES

    cfg = run.cfg
    name = cfg.model.name
    return export_scorer(
        out,
        score=run.task.score,
        params=params,
        item_vocab=run.data.item_vocab,
        user_vocab=run.data.user_vocab,
        model_name=name,
        family=FAMILIES[name],
        config={"model": {"name": name, name: to_dict(getattr(cfg.model, _section(name)))}},
        history=trainer.history_width(run) if history is None else history,
        max_k=max_k,
        default_k=min(cfg.eval.ks[0], max_k),
        force=force,
    )


def _section(model_name: str) -> str:
    """The `model.<section>` a model reads (multvae and multdae share `vae`)."""
    return {"multvae": "vae", "multdae": "vae"}.get(model_name, model_name)
