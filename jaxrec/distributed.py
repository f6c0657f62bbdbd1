"""Joining a multi-process JAX run (DESIGN.md §5): one `jaxrec train` per host or process.

Every process runs the same command; `jax.distributed.initialize` connects them through the
coordinator, after which `jax.devices()` spans all processes, the mesh is global, each
process's grain pipeline reads its own share of every global batch
(`Task.dataset(process_index, process_count)`), and orbax writes one checkpoint together.
On clusters the launcher sets the coordinator; here flags or the standard variables do:
JAX_COORDINATOR_ADDRESS (host:port), JAX_NUM_PROCESSES, JAX_PROCESS_ID.
"""

from __future__ import annotations

import os

from jaxrec.errors import ConfigError


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Join the run described by the arguments or the environment → whether one was joined.

    Must run before any JAX computation. With neither arguments nor JAX_COORDINATOR_ADDRESS
    this is a single-process run and nothing happens.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if coordinator is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ConfigError("--num-processes / --process-id need --coordinator HOST:PORT")
        return False
    try:
        num_processes = int(num_processes or os.environ.get("JAX_NUM_PROCESSES", 0))
        process_id = int(
            process_id if process_id is not None else os.environ.get("JAX_PROCESS_ID", -1)
        )
    except ValueError as e:
        raise ConfigError(f"JAX_NUM_PROCESSES / JAX_PROCESS_ID must be integers: {e}") from None
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(
            f"a multi-process run needs --num-processes N >= 1 and --process-id in 0..N-1 "
            f"(got {num_processes} and {process_id})"
        )
    import jax

    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
        # CPU processes exchange collectives through gloo (the default CPU backend has none).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    return True
