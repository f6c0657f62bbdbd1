"""The device mesh, logical-axis rules, state and batch shardings: the only module that sees devices.

Mesh axes: `data` (batch, data parallel) × `model` (rows of the item/user tables).
Model code names logical axes (`batch`, `items`, `users`, `embed`, `hidden`); `RULES` maps
them onto the mesh. The mesh uses *Auto* axis types on purpose: models and tasks are written
without sharding annotations, and GSPMD propagates the shardings fixed at the jit boundary
(state, batch). Explicit axes would make every intermediate's sharding part of the program.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxrec.errors import ConfigError

RULES = (
    ("batch", "data"),
    ("items", "model"),
    ("users", "model"),
    ("embed", None),
    ("hidden", None),
    ("gates", None),
)


def make_mesh(data: int = -1, model: int = 1, devices=None) -> Mesh:
    """A `data × model` mesh over `devices` (default: all devices of every process).

    data = -1 takes every device that `model` leaves.
    """
    devices = jax.devices() if devices is None else list(devices)
    n = len(devices)
    if model < 1 or n % model:
        raise ConfigError(f"mesh.model={model} must divide the {n} available devices")
    if data == -1:
        data = n // model
    if data * model != n:
        raise ConfigError(
            f"mesh.data × mesh.model = {data} × {model} = {data * model}, but {n} devices "
            f"are available; set mesh.data=-1 to use every device"
        )
    return jax.make_mesh(
        (data, model), ("data", "model"), axis_types=(AxisType.Auto,) * 2, devices=devices
    )


def logical_shardings(mesh: Mesh, boxed_tree):
    """NamedShardings for a tree whose leaves may be `nn.LogicallyPartitioned` boxes.

    A dimension that the mesh axes do not divide (e.g. 60 items over `model` = 8) is
    replicated rather than refused, with a warning: the sharded lookup falls back to `take`
    for such tables (`lookup`), so the numbers stay the same, only the memory is not split.
    """
    specs = nn.get_partition_spec(boxed_tree)
    shardings = nn.logical_to_mesh_sharding(specs, mesh, RULES)
    shapes = nn.meta.unbox(boxed_tree)

    def fit(sh: NamedSharding, leaf):
        shape = getattr(leaf, "shape", ())
        spec = list(sh.spec) + [None] * (len(shape) - len(sh.spec))
        fixed = []
        for size, axes in zip(shape, spec, strict=False):
            names = (axes,) if isinstance(axes, str) else tuple(axes or ())
            ways = int(np.prod([mesh.shape[a] for a in names])) if names else 1
            if ways > 1 and size % ways:
                warnings.warn(
                    f"an array of shape {tuple(shape)} cannot split {size} rows over mesh "
                    f"axes {names} ({ways} ways): replicated instead",
                    stacklevel=2,
                )
                axes = None
            fixed.append(axes)
        return NamedSharding(mesh, PartitionSpec(*fixed))

    return jax.tree.map(fit, shardings, shapes, is_leaf=lambda x: isinstance(x, NamedSharding))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, ndim: int, batch_axis: int = 0) -> NamedSharding:
    """Shard dimension `batch_axis` of an `ndim`-array over `data`, replicate the rest."""
    spec = [None] * ndim
    spec[batch_axis] = "data"
    return NamedSharding(mesh, PartitionSpec(*spec))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh, batch_axis: int = 0) -> dict:
    """The one host→device point: each process's numpy batch → global sharded jax arrays.

    With one process this is a plain sharded `device_put`; with several, each process passes
    its own slice of the global batch along `batch_axis`.
    """
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if value.ndim <= batch_axis:  # scalars and per-call values are replicated
            out[key] = jax.device_put(value, replicated(mesh))
        else:
            sharding = batch_sharding(mesh, value.ndim, batch_axis)
            out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def shard_global(batch: dict[str, np.ndarray], mesh: Mesh, batch_axis: int = 0) -> dict:
    """Like `shard_batch`, for a batch every process holds in full (evaluation chunks): each
    process places the slices its own devices hold."""
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        sharding = batch_sharding(mesh, value.ndim, batch_axis)
        out[key] = jax.make_array_from_callback(value.shape, sharding, lambda idx, v=value: v[idx])
    return out


def check_divisible(mesh: Mesh, batch_size: int, what: str = "train.batch_size") -> None:
    d = mesh.shape["data"]
    if batch_size % d:
        raise ConfigError(f"{what}={batch_size} must be a multiple of mesh.data={d}")


def _model_shards(rows: int | None = None) -> int:
    """Size of the context mesh's `model` axis (1 without a mesh, or when `rows` is given
    and does not split evenly over it)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or "model" not in mesh.shape:
        return 1
    n = mesh.shape["model"]
    return n if n > 1 and (rows is None or rows % n == 0) else 1


def lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Rows `ids` [...] of `table` [R, ...] → [..., ...]; out-of-range ids read zeros.

    With a row-sharded table (a context mesh, `jax.set_mesh`, whose `model` axis divides R)
    each device gathers the ids that fall in its own rows, zeros elsewhere, and a `psum` over
    `model` assembles the result, so only [len(ids), D] values cross devices. GSPMD's own
    `take` on the sharded table took 3.5 s vs 0.29 s for this one, forward + backward, for a
    400K × 64 table and 4,096 ids on 2 × 4 fake CPU devices
    (benchmarks/lookup_sharded.py). Without a mesh (or R not divisible) it is a plain take.
    """
    n = _model_shards(table.shape[0])
    if n == 1:
        return jnp.take(table, ids, axis=0, mode="fill", fill_value=0)
    rows = table.shape[0] // n

    def local(t, i):
        j = i - jax.lax.axis_index("model") * rows
        hit = (j >= 0) & (j < rows)
        got = jnp.take(t, jnp.clip(j, 0, rows - 1), axis=0)
        got = jnp.where(hit.reshape(hit.shape + (1,) * (t.ndim - 1)), got, 0)
        return jax.lax.psum(got, "model")

    spec = PartitionSpec("model", *([None] * (table.ndim - 1)))
    return jax.shard_map(local, in_specs=(spec, PartitionSpec()), out_specs=PartitionSpec(),
                         check_vma=False)(table, ids)  # fmt: skip


def top_k(scores: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Top k of `scores` [B, I] per row → (values [B, k], ids int32 [B, k]), as lax.top_k.

    With a context mesh whose `model` axis shards the items, two stages: each device takes
    the top k of its own items, the k × shards candidates are gathered, and a final top k
    merges them; only B × k × shards values move instead of B × I. Ties go to the lower item
    id in both forms (candidates are concatenated in shard order, and lax.top_k keeps the
    earlier of equal values).
    """
    n = _model_shards() if scores.shape[-1] >= k else 1
    if n == 1:
        values, ids = jax.lax.top_k(scores, k)
        return values, ids.astype(jnp.int32)
    num_items = scores.shape[-1]
    pad = -num_items % n
    if pad:  # padded columns score -inf and sort after every real item
        scores = jnp.pad(scores, ((0, 0), (0, pad)), constant_values=-jnp.inf)
    width = scores.shape[-1] // n

    def local(s):
        v, i = jax.lax.top_k(s, min(k, width))
        i = i + jax.lax.axis_index("model") * width
        v = jax.lax.all_gather(v, "model", axis=1, tiled=True)
        i = jax.lax.all_gather(i, "model", axis=1, tiled=True)
        best, j = jax.lax.top_k(v, k)
        return best, jnp.take_along_axis(i, j, axis=1)

    values, ids = jax.shard_map(local, in_specs=PartitionSpec(None, "model"),
                                out_specs=(PartitionSpec(), PartitionSpec()),
                                check_vma=False)(scores)  # fmt: skip
    return values, ids.astype(jnp.int32)
