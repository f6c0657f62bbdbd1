"""User profiles: the learned user representations and item embeddings of a trained model.

`jaxrec embed` writes them with raw ids to one Parquet file for downstream use (retrieval
indexes, clustering, features for other models): one row per user and per item, columns
`kind` ('user' | 'item'), `id` (raw id) and `vector` (list<float32>, D values). A user's
representation is what the model computes from the user's whole history in the data (every
event, all stages: `splits.history`, as `jaxrec recommend` serves): the final GRU state, the
Caser/NextItNet sequence vector, the VAE posterior mean, ...
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxrec.data import splits
from jaxrec.errors import ConfigError


def user_vectors(run, params, *, chunk_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(dense user ids [U'], float32 [U', D]) for every user with a known history."""
    if run.task.represent is None:
        raise ConfigError(f"model {run.cfg.model.name!r} defines no user representation")
    from jaxrec import trainer

    history = splits.history(run.split)
    users = np.flatnonzero(history.lengths > 0).astype(np.int32)
    fn = jax.jit(run.task.represent)
    out = []
    for lo in range(0, len(users), chunk_size):
        chunk = users[lo : lo + chunk_size]
        n = len(chunk)
        padded = np.concatenate([chunk, np.repeat(chunk[:1], chunk_size - n)])
        ids, mask = history.padded(padded, trainer.history_width(run))
        out.append(np.asarray(jax.device_get(fn(params, padded, ids, mask)))[:n])
    vectors = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    return users, vectors.astype(np.float32)


def item_vectors(run, params) -> np.ndarray:
    """float32 [I, D]: the model's item embeddings."""
    if run.task.item_vectors is None:
        raise ConfigError(f"model {run.cfg.model.name!r} defines no item embeddings")
    return np.asarray(jax.device_get(jax.jit(run.task.item_vectors)(params)), np.float32)


def write_embeddings(path: str | Path, run, params) -> dict:
    """Write user and item vectors with raw ids to Parquet at `path` → counts and sizes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    users, u_vec = user_vectors(run, params, chunk_size=run.cfg.eval.chunk_size)
    i_vec = item_vectors(run, params)
    raw_users = run.data.user_vocab[users].astype(str)
    raw_items = run.data.item_vocab.astype(str)

    def rows(kind, ids, vectors):
        d = vectors.shape[1]
        values = pa.array(vectors.reshape(-1), pa.float32())
        return pa.table(
            {
                "kind": pa.array([kind] * len(ids)),
                "id": pa.array(ids),
                "vector": pa.FixedSizeListArray.from_arrays(values, d),
            }
        )

    tables = [rows("user", raw_users, u_vec), rows("item", raw_items, i_vec)]
    if u_vec.shape[1] != i_vec.shape[1]:  # different widths cannot share one fixed-size column
        tables = [
            t.set_column(2, "vector", t["vector"].cast(pa.list_(pa.float32()))) for t in tables
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(tables), path)
    return {
        "users": len(users),
        "user_dim": u_vec.shape[1],
        "items": len(raw_items),
        "item_dim": i_vec.shape[1],
    }
