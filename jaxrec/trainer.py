"""`train_and_evaluate(cfg, workdir)`: one loop for every model family.

mesh → sharded state → compiled step → loop over the grain iterator → periodic validation
with early stopping → orbax checkpoints → test, beside the baselines, with the best
parameters by validation (the last ones where no validation stage exists); the workdir
commands use the same (`workdir.open_trained`). Rerunning the same command in the same
workdir resumes from the newest checkpoint.

The loop runs in named phases over one `_Loop` (the run, its state and where results go) and
a `Progress` (what every checkpoint's metadata records): `_setup` (restore, compile the step
with `step.compile_train_step`), `_train_epochs` (`_train_call` per compiled call,
`_close_epoch` → `_end_epoch` → `_validate` per epoch, `_save` checkpoints), `_test`. The
test tables are formatted by `reporting.test_tables`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from tqdm import tqdm

from jaxrec import baselines, evaluation, sharding
from jaxrec import workdir as workdir_lib
from jaxrec.checkpoint import Checkpointer, crash_point
from jaxrec.config import Config
from jaxrec.data.load import load_split_onto, source_files
from jaxrec.errors import CheckpointError, ConfigError, JaxrecError
from jaxrec.reporting import MetricWriter, test_tables
from jaxrec.step import TrainStep, all_finite, compile_train_step
from jaxrec.tasks import Task, build_task
from jaxrec.workdir import Preempted, Preemption

LOWER_IS_BETTER = ("rmse", "mae")


@dataclasses.dataclass
class Run:
    """What a workdir's model needs to train, evaluate or recommend."""

    cfg: Config
    data: object
    split: object
    mesh: object
    task: Task
    state: object
    shardings: object
    remap: dict | None = None  # what did not map onto the given vocabularies (prepare(vocab=))


def prepare(cfg: Config, vocab=None) -> Run:
    """Load data, build the mesh and the task, and initialise the sharded state.

    vocab: (user raw ids, item raw ids) to look dense ids up in (a workdir's saved
    vocabularies), instead of numbering them from the data as it is now.
    """
    data, split, remap = load_split_onto(cfg.data, vocab)
    mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.model)
    sharding.check_divisible(mesh, cfg.train.batch_size)
    task = build_task(cfg, split, events=data)
    init_key = jax.random.fold_in(jax.random.key(cfg.train.seed), 0)
    abstract = jax.eval_shape(task.init_state, init_key)
    shardings = sharding.logical_shardings(mesh, abstract)
    init = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)), out_shardings=shardings)
    return Run(cfg, data, split, mesh, task, init(init_key), shardings, remap)


def score_fn(run: Run, params):
    """The evaluator's `score_fn` for `params`: pads the user chunk to the data axis and
    shards it."""
    d = run.mesh.shape["data"]
    # Every process holds the whole chunk (multi-process evaluation scores the same users).
    shard = functools.partial(sharding.shard_global, mesh=run.mesh, batch_axis=0)
    score = jax.jit(run.task.score)

    def fn(users, hist_ids, hist_mask):
        # The evaluator already pads each chunk only to its longest history (power of two).
        n = len(users)
        pad = -n % d
        batch = {"users": users, "ids": hist_ids, "mask": hist_mask}
        if pad:
            batch = {
                k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in batch.items()
            }
        b = shard(batch)
        scores = score(params, b["users"], b["ids"], b["mask"])
        return _first_rows(scores, n) if pad else scores

    return fn


@functools.partial(jax.jit, static_argnums=1)
def _first_rows(x, n: int):
    """x[:n], compiled: also for arrays spread over several processes."""
    return x[:n]


def history_width(run: Run) -> int:
    """History items handed to the model: `eval.max_history`, or fewer where the model reads
    fewer (`Task.history_width`: Caser's L, NextItNet's max_length)."""
    width = run.cfg.eval.max_history
    return min(width, run.task.history_width) if run.task.history_width else width


def _evaluate(run: Run, fn, stage: str, protocol: str, users=None, **options) -> dict:
    e = run.cfg.eval
    return evaluation.evaluate(
        fn,
        run.split,
        stage,
        ks=e.ks,
        protocol=protocol,
        num_negatives=e.num_negatives,
        chunk_size=e.chunk_size,
        max_history=history_width(run),
        recall_denominator=e.recall_denominator,
        seed=run.cfg.train.seed,
        users=users,
        **options,
    )


def evaluate_params(
    run: Run, params, stage: str, protocols=None, users=None, **options
) -> list[dict]:
    """Metrics of `params` on `stage` under each protocol (default: the config's), over
    `users` (default: every user with a target at `stage`); `options` go to
    `evaluation.evaluate` (e.g. `one_chunk_per_shape`)."""
    if run.task.evaluate is not None:
        return [run.task.evaluate(params, stage)]
    fn = score_fn(run, params)
    with jax.set_mesh(run.mesh):  # sharded lookups and two-stage top-K see the mesh
        protocols = protocols or run.cfg.eval.protocols
        return [_evaluate(run, fn, stage, p, users, **options) for p in protocols]


def evaluate_baselines(run: Run, stage: str) -> list[tuple[str, dict]]:
    """(name, metrics) of every configured baseline under every protocol."""
    makers = {
        "popularity": baselines.popularity,
        "markov": baselines.markov_chain,
        "ease": lambda split, stage: baselines.ease(split, stage, l2=run.cfg.eval.ease_l2),
    }
    rows = []
    for name in run.cfg.eval.baselines:
        try:
            fn = makers[name](run.split, stage)
        except baselines.BaselineTooLarge as e:  # checked before any work: carry on without it
            if jax.process_index() == 0:
                print(f"warning: baseline {name} skipped: {e}")
            continue
        rows += [(name, _evaluate(run, fn, stage, p)) for p in run.cfg.eval.protocols]
    return rows


def _nbytes(tree) -> int:
    return int(sum(x.nbytes for x in jax.tree.leaves(tree)))


def train_and_evaluate(cfg: Config, workdir: str | Path, *, force: bool = False) -> dict:
    """Train (or resume) in `workdir`, then evaluate the best parameters on test → results."""
    workdir = Path(workdir)
    # In a multi-process run every process shares the workdir; process 0 owns the lock and
    # config.yaml (the others would be refused by its lock), orbax coordinates checkpoints.
    owner = jax.process_index() == 0
    lock = workdir_lib.claim(workdir, cfg, force, owner=owner)
    try:
        run, record = _prepare_in(workdir, cfg, force, owner)
        return _train_locked(run, workdir, record)
    finally:
        lock.release()


def _prepare_in(workdir: Path, cfg: Config, force: bool, owner: bool):
    """`prepare`, in a workdir that may hold a run → (run, record). Resuming maps the data
    through the saved vocabularies (a changed file must not renumber the ids a checkpoint
    was trained on) and is refused, unless forced, when the data changed. `record()` writes
    the workdir's config, data identity and vocabularies: at once for a new run (after its
    data loaded: a run that fails to load leaves the workdir as it was), after the restore
    for a resumed one (a failed forced resume leaves the old record)."""
    say = print if owner else (lambda *a, **k: None)
    resuming = workdir_lib.has_checkpoints(workdir)
    vocab = workdir_lib.saved_vocab(workdir) if resuming else None
    run = prepare(cfg, vocab=vocab)
    files = source_files(cfg.data)
    if resuming:
        changes = workdir_lib.changed_data(workdir, files, run.remap)
        if changes and not force:
            raise CheckpointError(
                f"{workdir} was trained on other data: {'; '.join(changes)}. Resuming would "
                "train on different events; restore the data, use another --workdir, or pass "
                "--force to continue on the new events with the saved ids (unknown users and "
                "items are skipped)"
            )
        for line in changes:
            say(f"warning: continuing on changed data (--force): {line}")
    else:
        say(f"workdir: {workdir.absolute()}")

    def record():
        if owner:
            workdir_lib.record(workdir, cfg, files, run.data)

    if not resuming:
        record()
    if run.data.timestamps is None and run.task.needs_order:
        say(
            f"WARNING: {run.data.source} has no timestamp column: {cfg.model.name} reads each "
            "user's events in FILE ORDER. If that order is not chronological the model learns "
            "from shuffled sequences; map a time column with data.columns.timestamp."
        )
    return run, (record if resuming else lambda: None)


@dataclasses.dataclass
class Progress:
    """Where a run stands between calls: every checkpoint's metadata, restored on resume."""

    epoch: int = 0  # epochs finished
    best: float | None = None  # best validation value (negated where lower is better)
    best_epoch: int = 0
    bad_epochs: int = 0  # validations since the best one, against `train.patience`
    done: bool = False
    early_stopped: bool = False
    eval_pending: bool = False  # the epoch's steps ran; its validation and checkpoint did not
    skipped: int = 0  # calls whose update `train.nonfinite=skip` dropped

    @classmethod
    def from_meta(cls, meta: dict) -> Progress:
        """From a checkpoint's metadata (older checkpoints lack some fields: defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in meta.items() if k in names})


@dataclasses.dataclass
class _Loop:
    """What the training phases share: the run, its evolving state and where results go."""

    run: Run
    workdir: Path
    state: object
    best: object  # the parameters of the best validation so far
    progress: Progress
    stored_done: bool | None  # `done` as the newest checkpoint holds it (None: no checkpoint)
    iterator: object
    ckpt: Checkpointer
    step: TrainStep
    key: jax.Array
    has_valid: bool
    writer: MetricWriter
    bar: tqdm
    show: bool
    say: Callable
    stop: Preemption | None = None
    pending: list = dataclasses.field(default_factory=list)  # metrics not yet read back
    epoch_examples: int = 0
    epoch_start: float = dataclasses.field(default_factory=time.perf_counter)
    compile_s: float | None = None


_finite = jax.jit(all_finite)


def _train_locked(run: Run, workdir: Path, record=lambda: None) -> dict:
    """The phases of a run in its claimed workdir: set up (restore, compile), train the
    epochs (validating, stopping early, checkpointing), test → results."""
    loop = _setup(run, workdir, record)
    try:
        with Preemption(run.cfg.train.preempt_grace_seconds) as loop.stop:
            _train_epochs(loop)
            results = _test(loop)
    finally:
        loop.ckpt.close()  # idempotent; lets a save in flight finish, so it is intact and sealed
    loop.writer.close()
    if jax.process_index() == 0:
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=float))
    return results


def _say():
    return print if jax.process_index() == 0 else (lambda *a, **k: None)


def _setup(run: Run, workdir: Path, record) -> _Loop:
    """Restore the newest checkpoint (if any), compile the step, open the metric writer."""
    tcfg, data, say = run.cfg.train, run.data, _say()
    say(
        f"data: {data.source}: {data.num_users} users, {data.num_items} items, "
        f"{data.num_events} events; split {run.split.name}; mesh {dict(run.mesh.shape)}"
    )
    state = run.state
    workdir_lib.check_free_space(
        workdir, _nbytes(state) + _nbytes(state.params), tcfg.keep_checkpoints
    )
    best = jax.tree.map(jnp.copy, state.params)
    iterator = iter(run.task.dataset(jax.process_index(), jax.process_count()))
    ckpt = Checkpointer(workdir / "checkpoints", tcfg.keep_checkpoints)
    progress, stored_done = Progress(), None
    if ckpt.latest_step() is not None:
        state, best, meta = ckpt.restore(state, best, iterator)
        record()
        progress, stored_done = Progress.from_meta(meta), meta.get("done")
        # `--force --set train.epochs=N` extends a finished run; early stopping is final.
        progress.done = progress.early_stopped or (
            progress.epoch >= tcfg.epochs and not progress.eval_pending
        )
        where = f"{workdir / 'checkpoints'} at step {int(state.step)}"
        say(f"resumed from {where}, epoch {progress.epoch}")
    step = compile_train_step(run.task.train_step, run.mesh, run.shardings, tcfg.nonfinite)
    has_valid = _has_validation(run, say)
    show = sys.stdout.isatty() if tcfg.progress is None else tcfg.progress
    bar = tqdm(desc="train", unit="step", disable=not show or jax.process_index() != 0)
    return _Loop(
        run,
        workdir,
        state,
        best,
        progress,
        stored_done,
        iterator,
        ckpt,
        step,
        key=jax.random.fold_in(jax.random.key(tcfg.seed), 1),
        has_valid=has_valid,
        writer=MetricWriter(workdir),
        bar=bar,
        show=show,
        say=say,
    )


def _has_validation(run: Run, say) -> bool:
    """Whether the split has users to select the epoch on (`eval.select_on`), said aloud."""
    select_on = run.cfg.eval.select_on
    has_valid = len(run.split.eval_users(select_on)) > 0
    if not has_valid:
        say("split has no validation users: no early stopping, the last parameters are tested")
    elif select_on == "test":
        say(
            "eval.select_on=test: the epoch is picked on the TEST set (the authors' protocol); "
            "its figures are optimistic, the last epoch's are reported beside them"
        )
    return has_valid


def _train_epochs(loop: _Loop) -> None:
    """Train until done; a SIGTERM saves a checkpoint and exits with status 143."""
    progress = loop.progress
    try:
        if progress.eval_pending:  # preempted during the last epoch's validation
            _end_epoch(loop, f"epoch {progress.epoch}: resumed its validation")
        while not progress.done:
            batch = next(loop.iterator, None)
            if batch is None:
                progress.done = True
                break
            if _train_call(loop, batch):
                _close_epoch(loop)
    except Preempted:
        _flush(loop)
        _save(loop)
        loop.ckpt.close()
        saved = f"step {int(loop.state.step)} to {loop.workdir / 'checkpoints'}"
        loop.say(f"SIGTERM: saved {saved}; exiting")
        raise SystemExit(143) from None
    loop.bar.close()


def _train_call(loop: _Loop, batch: dict) -> bool:
    """One compiled call on `batch` → whether it was the epoch's last."""
    last = bool(batch.pop("_last"))
    batch.pop("_epoch")
    device_batch = sharding.shard_batch(batch, loop.run.mesh, loop.run.task.batch_axis)
    t0 = time.perf_counter()
    loop.state, metrics = loop.step(loop.state, device_batch, loop.key)
    crash_point("step")
    if loop.compile_s is None:
        jax.block_until_ready(loop.state)
        loop.compile_s = time.perf_counter() - t0
        loop.epoch_start += loop.compile_s  # throughput figures exclude compilation
        loop.writer.write(0, {"compile_seconds": loop.compile_s}, "timing")
        loop.say(f"compiled the train step in {loop.compile_s:.1f} s")
    loop.pending.append(metrics)
    loop.bar.update(1)
    if len(loop.pending) >= 50:  # read metrics back in groups: no host sync per call
        _flush(loop)
    if loop.stop.requested:
        raise Preempted()
    return last


def _close_epoch(loop: _Loop) -> None:
    """After an epoch's last call: its loss and speed, then validation and checkpoint."""
    loss = _flush(loop)
    loop.progress.epoch += 1
    loop.progress.eval_pending = True
    seconds = time.perf_counter() - loop.epoch_start
    epoch, n_ex = loop.progress.epoch, loop.epoch_examples
    loop.writer.write(
        int(loop.state.step),
        {"epoch": epoch, "seconds": seconds, "examples_per_second": n_ex / seconds},
        "epoch",
    )
    _end_epoch(
        loop,
        f"epoch {epoch}: loss {loss:.4f}, {n_ex / seconds:,.0f} examples/s ({seconds:.1f} s)",
    )
    loop.epoch_examples, loop.epoch_start = 0, time.perf_counter()


def _flush(loop: _Loop) -> float | None:
    """Read the pending calls' metrics back → the mean loss of their finite calls; a
    non-finite call under `train.nonfinite=stop` raises."""
    if not loop.pending:
        return None
    values = jax.device_get(loop.pending)
    loop.pending.clear()
    good = [v for v in values if v["finite"]]
    skipped = len(values) - len(good)
    nonfinite = loop.run.cfg.train.nonfinite
    if skipped and nonfinite == "stop":
        bad = next(v for v in values if not v["finite"])
        raise JaxrecError(
            f"non-finite training loss before step {int(bad['step_after'])} (in the "
            f"compiled call after step {int(bad['step_before'])}); stopped. The last good "
            f"checkpoint in {loop.workdir / 'checkpoints'} is kept. Lower optim.learning_rate, "
            "set optim.clip_norm, or set train.nonfinite=skip to drop such updates."
        )
    loss = float(np.sum([v["loss"] * v["examples"] for v in good]))
    n = int(np.sum([v["examples"] for v in good]))
    loop.epoch_examples += n
    row = {"loss": loss / max(n, 1), "examples": n}
    if nonfinite == "skip":
        loop.progress.skipped += skipped
        row.update(skipped_calls=skipped, skipped_calls_total=loop.progress.skipped)
    loop.writer.write(int(loop.state.step), row, "train")
    loop.bar.set_postfix(loss=f"{loss / max(n, 1):.4f}")
    return loss / max(n, 1)


def _save(loop: _Loop) -> None:
    # Never replace a good checkpoint with a broken state (e.g. a finite loss whose
    # update overflowed): one reduction per checkpoint.
    if not bool(_finite(loop.state)):
        raise JaxrecError(
            f"the train state at step {int(loop.state.step)} holds non-finite numbers; not "
            f"saving it. The last good checkpoint in {loop.workdir / 'checkpoints'} is kept. "
            "Lower optim.learning_rate or set optim.clip_norm."
        )
    progress = dataclasses.asdict(loop.progress)
    loop.ckpt.save(int(loop.state.step), loop.state, loop.best, loop.iterator, progress)


def _end_epoch(loop: _Loop, line: str) -> None:
    """Validate, early-stop and checkpoint after epoch `progress.epoch` (resumable)."""
    progress, tcfg = loop.progress, loop.run.cfg.train
    epoch = progress.epoch
    # A split without validation users (CFGAN's and IRGAN's train/test files) trains the
    # configured epochs and tests the last parameters.
    if loop.has_valid and (epoch % tcfg.eval_every == 0 or epoch == tcfg.epochs):
        line += _validate(loop)
    progress.eval_pending = False
    if epoch >= tcfg.epochs:
        progress.done = True
    loop.bar.write(line) if loop.show else loop.say(line)
    if progress.done or epoch % tcfg.checkpoint_every == 0:
        _save(loop)


def _validate(loop: _Loop) -> str:
    """Validate the current parameters, keep them if best, count patience → text for the
    epoch's line."""
    cfg, progress = loop.run.cfg, loop.progress
    select_on = cfg.eval.select_on
    crash_point("eval", delay=0.01)
    with loop.stop.interruptible():
        (valid,) = evaluate_params(loop.run, loop.state.params, select_on, ("full",))
    if cfg.eval.metric not in valid:
        names = ", ".join(k for k, v in valid.items() if isinstance(v, float))
        raise ConfigError(
            f"eval.metric={cfg.eval.metric!r} is not reported by {cfg.model.name}'s "
            f"validation; choose one of: {names}"
        )
    # Lower is better for error metrics (AutoRec's RMSE): compare the negation.
    value = valid[cfg.eval.metric] * (-1 if cfg.eval.metric in LOWER_IS_BETTER else 1)
    loop.writer.write(int(loop.state.step), valid, select_on)
    line = f"; {evaluation.format_metrics(valid)}"
    if progress.best is None or value > progress.best:
        progress.best, progress.best_epoch, progress.bad_epochs = value, progress.epoch, 0
        loop.best = jax.tree.map(jnp.copy, loop.state.params)
    else:
        progress.bad_epochs += 1
    if cfg.train.patience and progress.bad_epochs >= cfg.train.patience:
        progress.done = progress.early_stopped = True
        line += f"; early stop (best epoch {progress.best_epoch})"
    return line


def _test(loop: _Loop) -> dict:
    """Seal the final checkpoint, then test the selected parameters → results."""
    progress, step = loop.progress, int(loop.state.step)
    if progress.best is None:  # no validation ran (e.g. zero epochs): test the last params
        loop.best = loop.state.params
    # Also when only `done` changed (a resume with fewer epochs): the workdir commands
    # read "finished" from the newest checkpoint.
    if loop.ckpt.latest_step() != step or progress.done != loop.stored_done:
        _save(loop)
    loop.ckpt.close()
    try:
        with loop.stop.interruptible():  # the final checkpoint exists: rerunning only tests
            last = None
            if loop.run.cfg.eval.select_on != "valid":
                last = (loop.state.params, progress.best_epoch)
            meta = dataclasses.asdict(progress)
            tested = workdir_lib.describe_params(meta, loop.run.cfg, step, True)
            loop.say(f"\ntested {tested['text']}; the workdir commands use the same")
            results = report(loop.run, loop.best, loop.writer, loop.say, last, step=step)
            results["parameters"] = tested
    except Preempted:
        loop.say("SIGTERM during the test evaluation; rerun to evaluate again")
        raise SystemExit(143) from None
    return results


def report(run: Run, params, writer: MetricWriter, say, last=None, step: int = 0) -> dict:
    """Test metrics of `params` beside the baselines, printed as tables and returned.
    TensorBoard gets them at `step`, one tag per system and protocol.

    last: (last parameters, best epoch) when the epoch was picked on the test set: both the
    picked and the last epoch are reported, each row named for what it is.
    """
    model = run.cfg.model.name
    tags: dict[str, str] = {}  # TensorBoard names of the labelled rows
    if last is None:
        rows = [(model, r) for r in evaluate_params(run, params, "test")]
    else:
        last_params, best_epoch = last
        picked = f"{model} (epoch {best_epoch}, picked on test)"
        tags = {picked: f"{model}_picked_on_test", f"{model} (last epoch)": f"{model}_last"}
        rows = [(picked, r) for r in evaluate_params(run, params, "test")]
        rows += [(f"{model} (last epoch)", r) for r in evaluate_params(run, last_params, "test")]
    rows += evaluate_baselines(run, "test")
    for name, r in rows:  # tags stay the same from run to run (no epoch numbers)
        tag = f"final_test/{tags.get(name, name)}/{r['protocol']}"
        writer.write(step, {"system": name, **r}, "test", tensorboard_prefix=tag)
    _, targets = run.split.stage("test")
    for text in test_tables(
        rows,
        run.cfg.eval.protocols,
        run.cfg.eval.ks[:3],
        run.split.name,
        several_targets=int(targets.lengths.max(initial=0)) > 1,
    ):
        say(text)
    return {"split": run.split.name, "results": [{"system": n, **r} for n, r in rows]}
