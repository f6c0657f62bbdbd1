"""`train_and_evaluate(cfg, workdir)`: one loop for every model family.

mesh → sharded state → compiled step → loop over the grain iterator → periodic validation
with early stopping → orbax checkpoints → test, beside the baselines, with the best
parameters by validation (the last ones where no validation stage exists); the workdir
commands use the same (`workdir.open_trained`). Rerunning the same command in the same
workdir resumes from the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from tqdm import tqdm

from jaxrec import baselines, evaluation, host_memory, sharding
from jaxrec import workdir as workdir_lib
from jaxrec.checkpoint import Checkpointer, crash_point
from jaxrec.config import Config
from jaxrec.data.load import load_split_onto, source_files
from jaxrec.errors import CheckpointError, ConfigError, JaxrecError
from jaxrec.reporting import MetricWriter, results_table
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
    host_memory.apply_setting(cfg.train.host_malloc)  # effective if nothing ran before
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
    """The evaluator's `score_fn` for `params`: pads the user chunk to the data axis and shards it."""
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


NONFINITE = ("stop", "skip")


def _all_finite(tree) -> jax.Array:
    """True where every float leaf of `tree` is finite (one fused reduction per leaf)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] or [jnp.array(True)]))


def guard_nonfinite(train_step, policy: str):
    """The task's step, plus on-device detection of non-finite numbers, for any family.

    Adds `finite` (bool) and `step_before`/`step_after` to the metrics. Every float metric
    counts (a task that reports `grad_norm` thereby has its gradients checked). `stop`: the
    host stops at the first flagged call and the last checkpoint stays the newest. `skip`:
    the new state is checked too (one read of every float leaf), and where anything is not
    finite the call's update is dropped with `lax.cond`, which selects whole buffers.
    """

    def step(state, batch, rng):
        new, metrics = train_step(state, batch, rng)
        ok = _all_finite(metrics)
        if policy == "skip":
            ok = ok & _all_finite(new)
            new = jax.lax.cond(ok, lambda: new, lambda: state)
        return new, {**metrics, "finite": ok, "step_before": state.step, "step_after": new.step}

    return step


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


def _train_locked(run: Run, workdir: Path, record=lambda: None) -> dict:
    cfg = run.cfg
    say = print if jax.process_index() == 0 else (lambda *a, **k: None)
    data = run.data
    say(
        f"data: {data.source}: {data.num_users} users, {data.num_items} items, "
        f"{data.num_events} events; split {run.split.name}; mesh {dict(run.mesh.shape)}"
    )

    state, task, tcfg = run.state, run.task, cfg.train
    workdir_lib.check_free_space(
        workdir, _nbytes(state) + _nbytes(state.params), tcfg.keep_checkpoints
    )
    best = jax.tree.map(jnp.copy, state.params)
    iterator = iter(task.dataset(jax.process_index(), jax.process_count()))
    ckpt = Checkpointer(workdir / "checkpoints", tcfg.keep_checkpoints)
    meta = {"epoch": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "done": False}
    stored_done = None
    if ckpt.latest_step() is not None:
        state, best, meta = ckpt.restore(state, best, iterator)
        record()
        stored_done = meta.get("done")
        # `--force --set train.epochs=N` extends a finished run; early stopping is final.
        meta["done"] = meta.get("early_stopped", False) or (
            meta["epoch"] >= tcfg.epochs and not meta.get("eval_pending")
        )
        say(
            f"resumed from {workdir / 'checkpoints'} at step {int(state.step)}, epoch {meta['epoch']}"
        )

    step_fn = jax.jit(
        guard_nonfinite(task.train_step, tcfg.nonfinite),
        donate_argnums=0,
        out_shardings=(run.shardings, sharding.replicated(run.mesh)),
    )
    finite_fn = jax.jit(_all_finite)
    select_on = cfg.eval.select_on
    has_valid = len(run.split.eval_users(select_on)) > 0
    if not has_valid:
        say("split has no validation users: no early stopping, the last parameters are tested")
    elif select_on == "test":
        say(
            "eval.select_on=test: the epoch is picked on the TEST set (the authors' protocol); "
            "its figures are optimistic, the last epoch's are reported beside them"
        )
    step_key = jax.random.fold_in(jax.random.key(tcfg.seed), 1)
    writer = MetricWriter(workdir)
    show = sys.stdout.isatty() if tcfg.progress is None else tcfg.progress
    bar = tqdm(desc="train", unit="step", disable=not show or jax.process_index() != 0)
    pending, epoch_examples, epoch_start, compile_s = [], 0, time.perf_counter(), None

    def flush():
        nonlocal epoch_examples
        if not pending:
            return None
        values = jax.device_get(pending)
        pending.clear()
        good = [v for v in values if v["finite"]]
        skipped = len(values) - len(good)
        if skipped and tcfg.nonfinite == "stop":
            bad = next(v for v in values if not v["finite"])
            raise JaxrecError(
                f"non-finite training loss before step {int(bad['step_after'])} (in the "
                f"compiled call after step {int(bad['step_before'])}); stopped. The last good "
                f"checkpoint in {workdir / 'checkpoints'} is kept. Lower optim.learning_rate, "
                "set optim.clip_norm, or set train.nonfinite=skip to drop such updates."
            )
        loss = float(np.sum([v["loss"] * v["examples"] for v in good]))
        n = int(np.sum([v["examples"] for v in good]))
        epoch_examples += n
        row = {"loss": loss / max(n, 1), "examples": n}
        if tcfg.nonfinite == "skip":
            meta["skipped"] = meta.get("skipped", 0) + skipped
            row.update(skipped_calls=skipped, skipped_calls_total=meta["skipped"])
        writer.write(int(state.step), row, "train")
        bar.set_postfix(loss=f"{loss / max(n, 1):.4f}")
        return loss / max(n, 1)

    def save():
        # Never replace a good checkpoint with a broken state (e.g. a finite loss whose
        # update overflowed): one reduction per checkpoint.
        if not bool(finite_fn(state)):
            raise JaxrecError(
                f"the train state at step {int(state.step)} holds non-finite numbers; not "
                f"saving it. The last good checkpoint in {workdir / 'checkpoints'} is kept. "
                "Lower optim.learning_rate or set optim.clip_norm."
            )
        ckpt.save(int(state.step), state, best, iterator, meta)

    def end_epoch(line: str) -> None:
        """Validate, early-stop and checkpoint after epoch `meta['epoch']` (resumable)."""
        nonlocal best
        epoch = meta["epoch"]
        # A split without validation users (CFGAN's and IRGAN's train/test files) trains the
        # configured epochs and tests the last parameters.
        if has_valid and (epoch % tcfg.eval_every == 0 or epoch == tcfg.epochs):
            crash_point("eval", delay=0.01)
            with stop.interruptible():
                (valid,) = evaluate_params(run, state.params, select_on, ("full",))
            if cfg.eval.metric not in valid:
                names = ", ".join(k for k, v in valid.items() if isinstance(v, float))
                raise ConfigError(
                    f"eval.metric={cfg.eval.metric!r} is not reported by {cfg.model.name}'s "
                    f"validation; choose one of: {names}"
                )
            # Lower is better for error metrics (AutoRec's RMSE): compare the negation.
            value = valid[cfg.eval.metric] * (-1 if cfg.eval.metric in LOWER_IS_BETTER else 1)
            writer.write(int(state.step), valid, select_on)
            line += f"; {evaluation.format_metrics(valid)}"
            if meta["best"] is None or value > meta["best"]:
                meta.update(best=value, best_epoch=epoch, bad_epochs=0)
                best = jax.tree.map(jnp.copy, state.params)
            else:
                meta["bad_epochs"] += 1
            if tcfg.patience and meta["bad_epochs"] >= tcfg.patience:
                meta["done"] = meta["early_stopped"] = True
                line += f"; early stop (best epoch {meta['best_epoch']})"
        meta["eval_pending"] = False
        if epoch >= tcfg.epochs:
            meta["done"] = True
        bar.write(line) if show else say(line)
        if meta["done"] or epoch % tcfg.checkpoint_every == 0:
            save()

    try:
        with Preemption(tcfg.preempt_grace_seconds) as stop:
            try:
                if meta.get("eval_pending"):  # preempted during the last epoch's validation
                    end_epoch(f"epoch {meta['epoch']}: resumed its validation")
                while not meta["done"]:
                    batch = next(iterator, None)
                    if batch is None:
                        meta["done"] = True
                        break
                    last = bool(batch.pop("_last"))
                    batch.pop("_epoch")
                    device_batch = sharding.shard_batch(batch, run.mesh, task.batch_axis)
                    t0 = time.perf_counter()
                    with jax.set_mesh(run.mesh):  # row-sharded lookups see the mesh
                        state, metrics = step_fn(state, device_batch, step_key)
                    crash_point("step")
                    if compile_s is None:
                        jax.block_until_ready(state)
                        compile_s = time.perf_counter() - t0
                        epoch_start += compile_s  # throughput figures exclude compilation
                        writer.write(0, {"compile_seconds": compile_s}, "timing")
                        say(f"compiled the train step in {compile_s:.1f} s")
                    pending.append(metrics)
                    bar.update(1)
                    if len(pending) >= 50:
                        flush()
                    if stop.requested:
                        raise Preempted()
                    if not last:
                        continue
                    loss = flush()
                    meta["epoch"] += 1
                    meta["eval_pending"] = True
                    seconds = time.perf_counter() - epoch_start
                    epoch, n_ex = meta["epoch"], epoch_examples
                    writer.write(
                        int(state.step),
                        {"epoch": epoch, "seconds": seconds, "examples_per_second": n_ex / seconds},
                        "epoch",
                    )
                    end_epoch(
                        f"epoch {epoch}: loss {loss:.4f}, {n_ex / seconds:,.0f} examples/s "
                        f"({seconds:.1f} s)"
                    )
                    epoch_examples, epoch_start = 0, time.perf_counter()
            except Preempted:
                flush()
                save()
                ckpt.close()
                say(f"SIGTERM: saved step {int(state.step)} to {workdir / 'checkpoints'}; exiting")
                raise SystemExit(143) from None
            bar.close()
            if meta["best"] is None:  # no validation ran (e.g. zero epochs): test the last params
                best = state.params
            # Also when only `done` changed (a resume with fewer epochs): the workdir commands
            # read "finished" from the newest checkpoint.
            if ckpt.latest_step() != int(state.step) or meta["done"] != stored_done:
                save()
            ckpt.close()
            try:
                with stop.interruptible():  # the final checkpoint exists: rerunning only tests
                    last = None if select_on == "valid" else (state.params, meta["best_epoch"])
                    tested = workdir_lib.describe_params(meta, cfg, int(state.step), True)
                    say(f"\ntested {tested['text']}; the workdir commands use the same")
                    results = report(run, best, writer, say, last, step=int(state.step))
                    results["parameters"] = tested
            except Preempted:
                say("SIGTERM during the test evaluation; rerun to evaluate again")
                raise SystemExit(143) from None
    finally:
        ckpt.close()  # idempotent; lets a save in flight finish, so it is intact and sealed
    writer.close()
    if jax.process_index() == 0:
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=float))
    return results


def report(run: Run, params, writer: MetricWriter, say, last=None, step: int = 0) -> dict:
    """Test metrics of `params` beside the baselines, printed as a table and returned.
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
    ks = run.cfg.eval.ks[:3]
    # One target per user (leave-one-out): HR/NDCG/MRR; several (held-out sets): Recall/NDCG/P.
    _, targets = run.split.stage("test")
    several = int(targets.lengths.max(initial=0)) > 1
    for protocol in run.cfg.eval.protocols:
        sel = [(n, r) for n, r in rows if r["protocol"].startswith(protocol)]
        if not sel:
            continue
        label = "full ranking, all items" if protocol == "full" else sel[0][1]["protocol"]
        names = (
            ("recall", "ndcg", "precision")
            if several and protocol == "full"
            else ("hr", "ndcg", "mrr")
        )
        if "recall" in names:
            den = {"all": "|targets|", "min": "min(K, |targets|)"}
            label += f"; recall = hits / {den.get(sel[0][1]['recall_denominator'], '?')}"
        keys = tuple(f"{m}@{k}" for k in ks for m in names)
        say(f"\ntest ({label}; {sel[0][1]['num_users']} users, split {run.split.name}):")
        say(results_table(sel, keys))
    # Results of a task's own `evaluate` hook (e.g. rating RMSE) under their own protocol.
    other = [(n, r) for n, r in rows if not r["protocol"].startswith(run.cfg.eval.protocols)]
    for protocol in dict.fromkeys(r["protocol"] for _, r in other):
        sel = [(n, r) for n, r in other if r["protocol"] == protocol]
        skip = ("seconds", "users_per_second")
        keys = tuple(k for k, v in sel[0][1].items() if isinstance(v, float) and k not in skip)
        say(f"\ntest ({protocol}; {sel[0][1]['num_users']} users, split {run.split.name}):")
        say(results_table(sel, keys))
    return {"split": run.split.name, "results": [{"system": n, **r} for n, r in rows]}
