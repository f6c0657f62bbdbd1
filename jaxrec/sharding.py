"""The device mesh, logical-axis rules, state and batch shardings: the only module that sees devices.

Mesh axes: `data` (batch, data parallel) × `model` (rows of the item/user tables).
Model code names logical axes (`batch`, `items`, `users`, `embed`, `hidden`); `RULES` maps
them onto the mesh. The mesh uses *Auto* axis types on purpose: models and tasks are written
without sharding annotations, and GSPMD propagates the shardings fixed at the jit boundary
(state, batch). Explicit axes would make every intermediate's sharding part of the program.
"""

from __future__ import annotations

import jax
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
    """NamedShardings for a tree whose leaves may be `nn.LogicallyPartitioned` boxes."""
    specs = nn.get_partition_spec(boxed_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, RULES)


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


def check_divisible(mesh: Mesh, batch_size: int, what: str = "train.batch_size") -> None:
    d = mesh.shape["data"]
    if batch_size % d:
        raise ConfigError(f"{what}={batch_size} must be a multiple of mesh.data={d}")
