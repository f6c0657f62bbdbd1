"""orbax checkpoints of everything a run needs to continue exactly: train state, the best
parameters so far, the grain iterator position and the loop's bookkeeping (JSON).

Saves are asynchronous (device→host copy blocks, the write runs in the background) and
atomic: orbax writes into a temporary directory and renames it when complete, so a crash
mid-save leaves the previous checkpoint as the newest intact one.
"""

from __future__ import annotations

from pathlib import Path

import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Keep-last-N checkpoints in `directory`; every checkpoint also holds the best params."""

    def __init__(self, directory: str | Path, keep: int = 2):
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(max(1, keep)),
            cleanup_tmp_directories=True,
            enable_async_checkpointing=True,
        )
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=options,
            item_names=("state", "best", "data_iter", "meta"),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, best_params, data_iter, meta: dict) -> None:
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            best=ocp.args.StandardSave(best_params),
            data_iter=grain.checkpoint.CheckpointSave(data_iter),
            meta=ocp.args.JsonSave(meta),
        )
        self.manager.save(step, args=args, force=True)

    def restore(self, state, best_params, data_iter, step: int | None = None):
        """Restore into the shapes, dtypes and shardings of `state` / `best_params` (templates)
        and move `data_iter` to the saved position → (state, best_params, meta)."""
        step = self.latest_step() if step is None else step
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        best_target = jax.tree.map(ocp.utils.to_shape_dtype_struct, best_params)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target),
                best=ocp.args.StandardRestore(best_target),
                data_iter=grain.checkpoint.CheckpointRestore(data_iter),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return out.state, out.best, out.meta

    def restore_meta_and_best(self, best_params, step: int | None = None):
        """Only the best params and bookkeeping (for `evaluate` / `recommend`)."""
        step = self.latest_step() if step is None else step
        best_target = jax.tree.map(ocp.utils.to_shape_dtype_struct, best_params)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                best=ocp.args.StandardRestore(best_target), meta=ocp.args.JsonRestore()
            ),
        )
        return out.best, out.meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
