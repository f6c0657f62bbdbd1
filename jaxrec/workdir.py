"""A workdir belongs to one run at a time and to one config; it must be writable.

`claim(workdir, cfg, force)` runs before anything is trained:

- lock: an exclusive `flock` on `<workdir>/.lock`, held for the life of the process. The
  kernel drops it when the process ends in any way (SIGKILL and power loss included), so a
  lock never goes stale and a crash never needs manual clean-up; a second `jaxrec train` on
  the same workdir is refused with the holder's pid.
- config: `<workdir>/config.yaml` records the config the workdir was trained with; once a
  checkpoint exists another config is refused unless forced (`--force`). It is written only
  when training starts (`record`, after the data loaded), so a run that fails before that
  leaves nothing that refuses the corrected command.
- disk: a probe file is written, fsynced and removed, so an unwritable or full disk is
  reported before compilation, not at the first checkpoint; `check_free_space` compares
  the free space with the size of the checkpoints the run will keep.

`Preemption` turns SIGTERM into a checkpoint and exit status 143 within a grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import yaml

from jaxrec.config import Config, to_dict
from jaxrec.data.interactions import describe_remap
from jaxrec.errors import CheckpointError, ConfigError

LOCK_NAME = ".lock"
PROBE_BYTES = 1 << 20  # a probe this size fails on a disk that is (nearly) full


class WorkdirLock:
    """Exclusive, non-blocking `flock` on `<workdir>/.lock`; `release()` or process exit frees it."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> WorkdirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(
                f"{self.path.parent} is in use by another `jaxrec train` (pid {holder}); wait "
                "for it to finish, stop it, or use another --workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            # Unlock before close; the file stays (removing it would race with a new holder).
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def probe_write(workdir: Path) -> None:
    """Write, fsync and remove a 1 MiB file in `workdir`, or raise CheckpointError."""
    probe = Path(workdir) / ".write-probe"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CheckpointError(
            f"cannot write to {workdir} ({e.strerror or e}); free some space or choose a "
            "writable --workdir. Nothing in it was changed."
        ) from None
    finally:
        probe.unlink(missing_ok=True)


def check_free_space(workdir: Path, checkpoint_bytes: int, keep: int) -> None:
    """Refuse to start when the disk cannot hold `keep` + 1 checkpoints of `checkpoint_bytes`
    (orbax writes the new one before it deletes the oldest)."""
    need = checkpoint_bytes * (keep + 1)
    free = shutil.disk_usage(workdir).free
    if free < need:
        raise CheckpointError(
            f"{workdir} has {free / 2**20:.0f} MiB free but {keep + 1} checkpoints of "
            f"{checkpoint_bytes / 2**20:.0f} MiB need {need / 2**20:.0f} MiB; free some space, "
            "lower train.keep_checkpoints or use another --workdir"
        )


def has_checkpoints(workdir: Path) -> bool:
    """Whether `workdir` holds a checkpoint step (something trained)."""
    ckpt = Path(workdir) / "checkpoints"
    return ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())


def _config_text(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def check_config(workdir: Path, cfg: Config, force: bool) -> None:
    """A workdir with checkpoints belongs to one config: refuse a different one unless forced.
    (Before its first checkpoint nothing depends on the recorded config.)"""
    path = Path(workdir) / "config.yaml"
    if not force and has_checkpoints(workdir) and path.exists():
        if path.read_text() != _config_text(cfg):
            raise CheckpointError(
                f"{workdir} was trained with a different config ({path}); use another "
                "--workdir, or pass --force to continue it with the new config"
            )


def _write_atomic(path: Path, data: bytes) -> None:
    """Via a temporary file and a rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def claim(workdir: Path, cfg: Config, force: bool, owner: bool = True) -> WorkdirLock:
    """Create `workdir`, lock it, probe the disk and check the config → the held lock.

    `owner=False` (processes other than 0 of a multi-process run) only creates the workdir
    and probes the disk: the lock and config.yaml belong to process 0.
    """
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(
            f"cannot create the workdir {workdir} ({e.strerror or e}); choose another --workdir"
        ) from None
    if not owner:
        return WorkdirLock(workdir)  # not acquired: release() is a no-op
    try:
        lock = WorkdirLock(workdir).acquire()
    except OSError as e:
        raise CheckpointError(
            f"cannot write to {workdir} ({e.strerror or e}); choose another --workdir"
        ) from None
    try:
        probe_write(workdir)
        check_config(workdir, cfg, force)
    except BaseException:
        lock.release()
        raise
    return lock


class Preempted(Exception):
    """Raised inside an interruptible phase (evaluation) when SIGTERM arrives."""


class Preemption:
    """SIGTERM → the loop saves a checkpoint at the next step boundary and exits with 143.

    What it guarantees: the process is gone at most `grace` seconds after SIGTERM. A SIGTERM
    during a train step is handled when the step returns (one compiled call); during an
    evaluation the evaluation is abandoned at once (`interruptible`) and redone on resume;
    anything that cannot be interrupted (compiling, a slow checkpoint write) is bounded by a
    watchdog that ends the process at the deadline without a new checkpoint. Saves are
    atomic, so the newest complete checkpoint is intact in every case and the next run
    resumes from it.
    """

    def __init__(self, grace: float):
        self.grace = grace
        self.requested = False
        self._interruptible = False
        self._old = None
        self._timer: threading.Timer | None = None
        self._pipe: tuple[int, int] | None = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no preemption handling
            return self
        # Python runs signal handlers in the main thread between bytecodes, i.e. only after
        # a long compile or device call returns. The C-level handler also writes the signal
        # number to the wakeup fd at once; a watcher thread starts the deadline from it.
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._pipe = (r, w)
        self._old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(r,), daemon=True).start()
        return self

    def _watch(self, r: int) -> None:
        while data := os.read(r, 64):
            if signal.SIGTERM in data:
                self._start_deadline()
            if 0 in data:  # __exit__'s wake-up
                break
        os.close(r)

    def _start_deadline(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.grace, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _handle(self, *_):
        self._start_deadline()
        if self.requested:
            return
        self.requested = True
        if self._interruptible:
            raise Preempted()

    def _expire(self):
        print(
            f"jaxrec: SIGTERM: no clean stop within train.preempt_grace_seconds={self.grace:g}; "
            "exiting without a new checkpoint (the newest saved one is intact)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(143)

    @contextlib.contextmanager
    def interruptible(self):
        """A phase that SIGTERM abandons (raises `Preempted`) instead of waiting for."""
        if self.requested:
            raise Preempted()
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def __exit__(self, *exc):
        if self._timer is not None:
            self._timer.cancel()
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            os.write(self._pipe[1], b"\0")
            os.close(self._pipe[1])
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


# --- what a trained workdir holds: data identity, vocabularies, the tested parameters -------

DATA_FILE = "data.json"
VOCAB_FILE = "vocab.npz"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_identity(files: dict[str, Path]) -> dict[str, dict]:
    """{config key: {path, bytes, sha256}} of the data files (what `data.json` records)."""
    return {
        key: {"path": str(Path(p).absolute()), "bytes": Path(p).stat().st_size,
              "sha256": _sha256(Path(p))}
        for key, p in files.items()
    }  # fmt: skip


def record(workdir: Path, cfg: Config, files: dict[str, Path], data) -> None:
    """Claim `workdir` for this config and data (process 0, once the data has loaded):
    config.yaml, data.json (size and sha256 of each data file) and vocab.npz (raw ids by
    dense id; str arrays, never object dtype: read back with allow_pickle=False)."""
    workdir = Path(workdir)
    _write_atomic(workdir / "config.yaml", _config_text(cfg).encode())
    identity = {"files": file_identity(files), "users": int(data.num_users),
                "items": int(data.num_items)}  # fmt: skip
    _write_atomic(workdir / DATA_FILE, json.dumps(identity, indent=2).encode())
    tmp = workdir / (VOCAB_FILE + ".tmp.npz")
    np.savez(tmp, users=data.user_vocab.astype(str), items=data.item_vocab.astype(str))
    os.replace(tmp, workdir / VOCAB_FILE)


def saved_vocab(workdir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(user raw ids, item raw ids) saved when the workdir was trained; None before that."""
    path = Path(workdir) / VOCAB_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        return f["users"], f["items"]


def data_changes(workdir: Path, files: dict[str, Path]) -> list[str]:
    """What differs between the data files now and when `workdir` was trained, one line
    each (empty: the same files, or no record)."""
    path = Path(workdir) / DATA_FILE
    if not path.exists():
        return []
    then = json.loads(path.read_text())["files"]
    changes = []
    for key in sorted(set(then) | set(files)):
        if key not in files:
            changes.append(f"{key} is no longer read (was {then[key]['path']})")
            continue
        p = Path(files[key])
        if not p.exists():
            changes.append(f"{key}: {p} no longer exists")
            continue
        if key not in then:
            changes.append(f"{key}: {p} was not read in training")
            continue
        size = p.stat().st_size
        was = then[key]
        # Only contents count: the same file reached through another path (another working
        # directory, JAXREC_DATA_DIR) is the same data.
        if size != was["bytes"]:
            changes.append(f"{key}: {p} is {size} bytes, was {was['bytes']} in training")
        elif _sha256(p) != was["sha256"]:
            changes.append(f"{key}: {p} has the same size but other contents (sha256)")
    return changes


def changed_data(workdir: Path, files: dict[str, Path], remap: dict | None) -> list[str]:
    """`data_changes`, and for a workdir recorded before data.json existed, whether the ids
    did not map onto the saved vocabularies. Once data.json exists, files that match it are
    the data the checkpoints were trained on, even where some ids did not map (a run forced
    onto changed data trained on them mapped so)."""
    changes = data_changes(workdir, files)
    if remap is not None and not (Path(workdir) / DATA_FILE).exists():
        changes.append(f"ids: {describe_remap(remap)}")
    return changes


def describe_params(meta: dict, cfg: Config, step: int, finished: bool) -> dict:
    """Which parameters a workdir's commands use, as recorded with the checkpoint: the best
    by validation where a validation stage picked them, else the last ones."""
    if meta.get("best") is None:
        out = {"parameters": "last", "epoch": int(meta["epoch"]), "checkpoint_step": step,
               "text": f"the last parameters (epoch {meta['epoch']}, step {step}; no "
                       "validation stage picked an epoch)"}  # fmt: skip
    else:
        on = cfg.eval.select_on
        where = "validation" if on == "valid" else "the TEST set (the authors' protocol)"
        out = {"parameters": "best", "epoch": int(meta["best_epoch"]), "checkpoint_step": step,
               "selected_on": on,
               "metric": cfg.eval.metric,
               "text": f"the best parameters by {cfg.eval.metric} on {where} (epoch "
                       f"{meta['best_epoch']} of {meta['epoch']})"}  # fmt: skip
    out["finished"] = finished
    if not finished:
        out["text"] += f"; newest checkpoint (step {step}) of a run whose training has not finished"
    return out


@dataclasses.dataclass
class Trained:
    """A trained workdir opened for a command: the run (data mapped through the saved
    vocabularies), the parameters its final test used, and what they are."""

    run: object
    params: object
    info: dict  # describe_params(...), plus "data_changes" and "remap"


def open_trained(workdir, *, newest: bool = False, warn=None) -> Trained:
    """The workdir's run and the parameters every later command uses.

    Refuses a workdir whose training has not finished unless `newest` (then: the newest
    checkpoint's choice of parameters). Data files that changed since training are reported
    through `warn` (one line each); ids always come from the saved vocabularies.
    """
    from jaxrec import trainer
    from jaxrec.checkpoint import Checkpointer
    from jaxrec.config import load_config
    from jaxrec.data.load import source_files

    workdir = Path(workdir)
    path = workdir / "config.yaml"
    if not path.exists():
        raise ConfigError(
            f"{workdir}: not a jaxrec workdir (no config.yaml); run `jaxrec train` first"
        )
    if not has_checkpoints(workdir):
        raise CheckpointError(f"{workdir}: no checkpoint yet; run `jaxrec train` first")
    cfg = load_config(path)
    run = trainer.prepare(cfg, vocab=saved_vocab(workdir))
    changes = changed_data(workdir, source_files(cfg.data), run.remap)
    if warn is not None:
        for line in changes:
            warn(f"the data changed since training: {line}")
        if run.remap is not None:
            warn(f"ids are looked up in the workdir's vocabularies: {describe_remap(run.remap)}")
    ckpt = Checkpointer(workdir / "checkpoints", read_only=True)
    try:
        params, meta, step = ckpt.restore_tested(run.state)
    finally:
        ckpt.close()
    finished = bool(meta.get("done"))
    if not finished and not newest:
        raise CheckpointError(
            f"{workdir}: training has not finished (newest checkpoint: step {step}, epoch "
            f"{meta['epoch']} of {cfg.train.epochs}); rerun `jaxrec train` to finish it, or "
            "pass --newest-checkpoint to use that checkpoint's parameters"
        )
    info = describe_params(meta, cfg, step, finished)
    info["data_changes"] = changes
    info["remap"] = run.remap
    return Trained(run, params, info)
