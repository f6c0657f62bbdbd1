"""orbax checkpoints of everything a run needs to continue exactly: train state, the best
parameters so far, the grain iterator position and the loop's bookkeeping (JSON).

Saves are asynchronous (device→host copy blocks, the write runs in the background) and
atomic: orbax writes into a temporary directory and renames it when complete, so a crash
mid-save leaves the previous checkpoint as the newest intact one, and orbax deletes the
oldest kept checkpoint only after the new one is complete.

Every finished checkpoint gets a manifest (`<step>/jaxrec-sha256.json`: size and sha256 of
each file), written by a background thread as soon as orbax reports the write finished.
`restore` verifies it and falls back, with a `CorruptCheckpointWarning`, to the newest step
that verifies and loads; corrupt steps are moved to `<directory>.corrupt/`, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path

import grain
import jax
import orbax.checkpoint as ocp

from jaxrec.errors import CheckpointError

MANIFEST = "jaxrec-sha256.json"
CRASH_ENV = "JAXREC_TEST_CRASH_AT"


class CorruptCheckpointWarning(UserWarning):
    """A checkpoint failed verification or loading; an older one was used instead."""


def crash_point(name: str, *, delay: float | None = None) -> None:
    """Tests only: SIGKILL this process at the n-th time it reaches point `name`.

    `JAXREC_TEST_CRASH_AT=name:n[:SIGNAL]` (e.g. `checkpoint:2`, `step:7`, `eval:1:SIGTERM`;
    SIGKILL by default). With `delay`, the signal comes from a timer that many seconds later,
    i.e. in the middle of what follows. Unset (always, outside tests) this is one lookup.
    """
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if parts[0] != name:
        return
    n = int(parts[1]) if len(parts) > 1 else 1
    sig = parts[2] if len(parts) > 2 else "SIGKILL"
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] != n:
        return
    kill = lambda: os.kill(os.getpid(), signal.Signals[sig])  # noqa: E731
    if delay is None:
        kill()
    else:
        threading.Timer(delay, kill).start()


_crash_counts: dict[str, int] = {}


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(step_dir: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(step_dir)): p
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and not p.name.startswith(MANIFEST)
    }


def write_manifest(step_dir: Path) -> None:
    """Record size and sha256 of every file of a finished checkpoint (atomically)."""
    entries = {k: [p.stat().st_size, _digest(p)] for k, p in _files(step_dir).items()}
    tmp = step_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(entries, indent=0))
    os.replace(tmp, step_dir / MANIFEST)


def verify_manifest(step_dir: Path) -> str | None:
    """None when `step_dir` matches its manifest (or has none yet), else what is wrong."""
    path = step_dir / MANIFEST
    if not path.exists():
        return None  # finished but not yet sealed (crash right after the write): let orbax try
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return "its manifest is unreadable"
    files = _files(step_dir)
    if missing := sorted(set(entries) - set(files)):
        return f"file {missing[0]} is missing"
    if extra := sorted(set(files) - set(entries)):
        return f"file {extra[0]} was not part of it"
    for name, (size, digest) in entries.items():
        if files[name].stat().st_size != size:
            return f"file {name} has the wrong size (truncated?)"
        if _digest(files[name]) != digest:
            return f"file {name} has the wrong checksum (garbled?)"
    return None


class Checkpointer:
    """Keep-last-N checkpoints in `directory`; every checkpoint also holds the best params."""

    def __init__(self, directory: str | Path, keep: int = 2, read_only: bool = False):
        """read_only: for readers beside a possibly running `jaxrec train` (the workdir
        commands): nothing is written, cleaned up or deleted."""
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(max(1, keep)),
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=True,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=("state", "best", "data_iter", "meta"),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def _seal(self, steps: list[int], replaced: Path | None = None) -> None:
        """Wait for the write in flight, then give `steps` (written by this process) a manifest.

        Runs in a background thread right after each save, so a checkpoint is sealed about
        when it is complete. A step found unsealed at start-up is never sealed: it may have
        been damaged since, and sealing it would bless the damage.
        """
        try:
            self.manager.wait_until_finished()
            for step in steps:
                step_dir = self.directory / str(step)
                if step_dir.is_dir() and not (step_dir / MANIFEST).exists():
                    write_manifest(step_dir)
            if replaced is not None and jax.process_index() == 0:  # successor complete, sealed
                shutil.rmtree(replaced, ignore_errors=True)
        except Exception as e:  # orbax re-raises the background write's error here
            self._error = e

    def _join(self) -> None:
        """Wait for the sealer; raise a failed write as CheckpointError."""
        sealer, self._sealer = getattr(self, "_sealer", None), None
        if sealer is not None:
            sealer.join()
        else:
            self._seal([])
        error, self._error = getattr(self, "_error", None), None
        if error is not None:
            raise CheckpointError(
                f"writing a checkpoint to {self.directory} failed ({error}); the earlier "
                "checkpoints are intact. Free some space or fix the permissions and rerun."
            ) from error

    def save(self, step: int, state, best_params, data_iter, meta: dict) -> None:
        """Write checkpoint `step` in the background. Saving a step that exists (the redone
        validation of a preempted epoch) first moves the old one to `<directory>.replaced/`,
        and deletes it only once the new one is complete and sealed."""
        self._join()
        replaced = None
        many = jax.process_count() > 1
        if step in self.manager.all_steps():
            replaced = self.directory.parent / f"{self.directory.name}.replaced" / str(step)
            if jax.process_index() == 0:  # one process moves the shared directory
                replaced.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(replaced, ignore_errors=True)
                shutil.move(self.directory / str(step), replaced)
            if many:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices(f"jaxrec-replace-{step}")
            self.manager.reload()
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            best=ocp.args.StandardSave(best_params),
            data_iter=grain.checkpoint.CheckpointSave(data_iter),
            meta=ocp.args.JsonSave(meta),
        )
        try:
            self.manager.save(step, args=args, force=True)
        except OSError as e:
            raise CheckpointError(
                f"cannot write checkpoint {step} to {self.directory} ({e.strerror or e}); the "
                "earlier checkpoints are intact. Free some space or fix the permissions and rerun."
            ) from e
        if many:
            # Orbax's wait is a barrier across processes. Every process must reach it in the
            # same order relative to its other collectives (the next train step's); a
            # background sealer would interleave them differently per process and deadlock
            # (seen: a two-process run hung at its last save). So seal here, in line; the
            # shared directory gets its manifest from process 0 only.
            self._seal([step] if jax.process_index() == 0 else [], replaced)
        else:
            self._sealer = threading.Thread(target=self._seal, args=([step], replaced), daemon=True)
            self._sealer.start()
        crash_point("checkpoint", delay=0.0)

    def _first_intact(self, restore_step, step: int | None, quarantine: bool):
        """`restore_step(step)` on the newest step that verifies and loads → (step, result)."""
        steps = sorted(self.manager.all_steps(), reverse=True) if step is None else [step]
        for s in steps:
            step_dir = self.directory / str(s)
            problem = verify_manifest(step_dir)
            if problem is None:
                try:
                    return s, restore_step(s)
                except Exception as e:  # any decode failure means: this step is unusable
                    problem = f"it does not load ({type(e).__name__}: {str(e)[:200]})"
            where = ""
            if quarantine:
                dest = (
                    self.directory.parent
                    / f"{self.directory.name}.corrupt"
                    / f"{s}-{time.time_ns()}"
                )
                if jax.process_index() == 0:  # one process moves the shared directory
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(step_dir, dest)
                if jax.process_count() > 1:
                    from jax.experimental import multihost_utils

                    multihost_utils.sync_global_devices(f"jaxrec-quarantine-{s}")
                where = f"; moved it to {dest}"
                self.manager.reload()
            warnings.warn(
                f"checkpoint step {s} in {self.directory} is corrupt: {problem}{where}; "
                "trying the previous one",
                CorruptCheckpointWarning,
                stacklevel=3,
            )
        raise CheckpointError(
            f"no intact checkpoint left in {self.directory}; rerun to start from scratch, or "
            "use another --workdir"
        )

    def restore(self, state, best_params, data_iter, step: int | None = None):
        """Restore into the shapes, dtypes and shardings of `state` / `best_params` (templates)
        and move `data_iter` to the saved position → (state, best_params, meta).

        Without `step`: the newest intact step; corrupt newer ones are moved aside (warned).
        """
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        best_target = jax.tree.map(ocp.utils.to_shape_dtype_struct, best_params)

        def restore_step(s):
            return self.manager.restore(
                s,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target),
                    best=ocp.args.StandardRestore(best_target),
                    data_iter=grain.checkpoint.CheckpointRestore(data_iter),
                    meta=ocp.args.JsonRestore(),
                ),
            )

        _, out = self._first_intact(restore_step, step, quarantine=True)
        return out.state, out.best, out.meta

    def restore_tested(self, state):
        """The parameters the run's test used, read-only → (params, meta, step), from the
        newest intact step: the best parameters where a validation picked them
        (meta["best"] set), else the state's own (a run without a validation stage tests
        its last parameters). `state` is a template (shapes, dtypes, shardings)."""

        def restore_step(s):
            meta = self.manager.restore(s, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            name = "state" if meta.meta.get("best") is None else "best"
            template = state if name == "state" else state.params
            target = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
            args = {name: ocp.args.StandardRestore(target)}
            out = self.manager.restore(s, args=ocp.args.Composite(**args))
            params = out.state.params if name == "state" else out.best
            return params, meta.meta

        step, (params, meta) = self._first_intact(restore_step, None, quarantine=False)
        return params, meta, step

    def wait(self) -> None:
        self._join()

    def close(self) -> None:
        """Finish and seal the write in flight, then close; closing twice is harmless."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            self._join()
        finally:
            self.manager.close()
