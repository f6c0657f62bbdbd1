"""`train_and_evaluate(cfg, workdir)`: one loop for every model family.

mesh → sharded state → compiled step → loop over the grain iterator → periodic validation
with early stopping → orbax checkpoints → test with the best parameters, beside the
baselines. Rerunning the same command in the same workdir resumes from the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from flax import linen as nn
from tqdm import tqdm

from jaxrec import baselines, evaluation, sharding
from jaxrec.checkpoint import Checkpointer
from jaxrec.config import Config, to_dict
from jaxrec.data.load import load_split
from jaxrec.errors import CheckpointError, JaxrecError
from jaxrec.reporting import MetricWriter, results_table
from jaxrec.tasks import Task, build_task

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


def prepare(cfg: Config) -> Run:
    """Load data, build the mesh and the task, and initialise the sharded state."""
    data, split = load_split(cfg.data)
    mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.model)
    sharding.check_divisible(mesh, cfg.train.batch_size)
    task = build_task(cfg, split)
    init_key = jax.random.fold_in(jax.random.key(cfg.train.seed), 0)
    abstract = jax.eval_shape(task.init_state, init_key)
    shardings = sharding.logical_shardings(mesh, abstract)
    init = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)), out_shardings=shardings)
    return Run(cfg, data, split, mesh, task, init(init_key), shardings)


def score_fn(run: Run, params):
    """The evaluator's `score_fn` for `params`: pads the user chunk to the data axis and shards it."""
    d = run.mesh.shape["data"]
    shard = functools.partial(sharding.shard_batch, mesh=run.mesh, batch_axis=0)
    score = jax.jit(run.task.score)

    def fn(users, hist_ids, hist_mask):
        # Drop all-padding columns on the left, to a power-of-two width (few compiles).
        longest = int(hist_mask.sum(axis=1).max(initial=1))
        width = min(hist_mask.shape[1], max(8, 1 << (longest - 1).bit_length()))
        hist_ids, hist_mask = hist_ids[:, -width:], hist_mask[:, -width:]
        n = len(users)
        pad = -n % d
        batch = {"users": users, "ids": hist_ids, "mask": hist_mask}
        if pad:
            batch = {
                k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in batch.items()
            }
        b = shard(batch)
        return score(params, b["users"], b["ids"], b["mask"])[:n]

    return fn


def _evaluate(run: Run, fn, stage: str, protocol: str) -> dict:
    e = run.cfg.eval
    return evaluation.evaluate(
        fn,
        run.split,
        stage,
        ks=e.ks,
        protocol=protocol,
        num_negatives=e.num_negatives,
        chunk_size=e.chunk_size,
        max_history=e.max_history,
        recall_denominator=e.recall_denominator,
        seed=run.cfg.train.seed,
    )


def evaluate_params(run: Run, params, stage: str, protocols=None) -> list[dict]:
    """Metrics of `params` on `stage` under each protocol (default: the config's)."""
    if run.task.evaluate is not None:
        return [run.task.evaluate(params, stage)]
    fn = score_fn(run, params)
    return [_evaluate(run, fn, stage, p) for p in (protocols or run.cfg.eval.protocols)]


def evaluate_baselines(run: Run, stage: str) -> list[tuple[str, dict]]:
    """(name, metrics) of every configured baseline under every protocol."""
    makers = {
        "popularity": baselines.popularity,
        "markov": baselines.markov_chain,
        "ease": lambda split, stage: baselines.ease(split, stage, l2=run.cfg.eval.ease_l2),
    }
    rows = []
    for name in run.cfg.eval.baselines:
        fn = makers[name](run.split, stage)
        rows += [(name, _evaluate(run, fn, stage, p)) for p in run.cfg.eval.protocols]
    return rows


def check_workdir(workdir: Path, cfg: Config, force: bool) -> None:
    """A workdir belongs to one config: refuse a different one unless forced."""
    path = workdir / "config.yaml"
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    if path.exists() and path.read_text() != text and not force:
        raise CheckpointError(
            f"{workdir} was started with a different config ({path}); use another --workdir, "
            "or pass --force to continue it with the new config"
        )
    path.write_text(text)


class _Stop:
    """SIGTERM sets a flag; the loop saves at the next step boundary and exits cleanly."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, *_):
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def train_and_evaluate(cfg: Config, workdir: str | Path, *, force: bool = False) -> dict:
    """Train (or resume) in `workdir`, then evaluate the best parameters on test → results."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    check_workdir(workdir, cfg, force)
    run = prepare(cfg)
    say = print if jax.process_index() == 0 else (lambda *a, **k: None)
    data = run.data
    say(
        f"data: {data.source}: {data.num_users} users, {data.num_items} items, "
        f"{data.num_events} events; split {run.split.name}; mesh {dict(run.mesh.shape)}"
    )
    np.savez(workdir / "vocab.npz", users=data.user_vocab, items=data.item_vocab)

    state, task, tcfg = run.state, run.task, cfg.train
    best = jax.tree.map(jnp.copy, state.params)
    iterator = iter(task.dataset(jax.process_index(), jax.process_count()))
    ckpt = Checkpointer(workdir / "checkpoints", tcfg.keep_checkpoints)
    meta = {"epoch": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "done": False}
    if ckpt.latest_step() is not None:
        state, best, meta = ckpt.restore(state, best, iterator)
        # `--force --set train.epochs=N` extends a finished run; early stopping is final.
        meta["done"] = meta.get("early_stopped", False) or meta["epoch"] >= tcfg.epochs
        say(
            f"resumed from {workdir / 'checkpoints'} at step {int(state.step)}, epoch {meta['epoch']}"
        )

    step_fn = jax.jit(
        task.train_step,
        donate_argnums=0,
        out_shardings=(run.shardings, sharding.replicated(run.mesh)),
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
        loss = float(np.sum([v["loss"] * v["examples"] for v in values]))
        n = int(np.sum([v["examples"] for v in values]))
        epoch_examples += n
        if not np.isfinite(loss):
            raise JaxrecError(
                f"non-finite training loss before step {int(state.step)}; the last good "
                f"checkpoint in {workdir / 'checkpoints'} is kept. Lower optim.learning_rate "
                "or set optim.clip_norm."
            )
        writer.write(int(state.step), {"loss": loss / max(n, 1), "examples": n}, "train")
        bar.set_postfix(loss=f"{loss / max(n, 1):.4f}")
        return loss / max(n, 1)

    with _Stop() as stop:
        while not meta["done"]:
            batch = next(iterator, None)
            if batch is None:
                meta["done"] = True
                break
            last = bool(batch.pop("_last"))
            batch.pop("_epoch")
            device_batch = sharding.shard_batch(batch, run.mesh, task.batch_axis)
            t0 = time.perf_counter()
            state, metrics = step_fn(state, device_batch, step_key)
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
                flush()
                ckpt.save(int(state.step), state, best, iterator, meta)
                ckpt.close()
                say(f"SIGTERM: saved step {int(state.step)} to {workdir / 'checkpoints'}; exiting")
                raise SystemExit(143)
            if not last:
                continue
            loss = flush()
            meta["epoch"] += 1
            seconds = time.perf_counter() - epoch_start
            epoch, n_ex = meta["epoch"], epoch_examples
            line = f"epoch {epoch}: loss {loss:.4f}, {n_ex / seconds:,.0f} examples/s ({seconds:.1f} s)"
            writer.write(
                int(state.step),
                {"epoch": epoch, "seconds": seconds, "examples_per_second": n_ex / seconds},
                "epoch",
            )
            if epoch % tcfg.eval_every == 0 or epoch == tcfg.epochs:
                (valid,) = evaluate_params(run, state.params, "valid", ("full",))
                # Lower is better for error metrics (AutoRec's RMSE): compare the negation.
                value = valid[cfg.eval.metric] * (-1 if cfg.eval.metric in LOWER_IS_BETTER else 1)
                writer.write(int(state.step), valid, "valid")
                line += f"; {evaluation.format_metrics(valid)}"
                if meta["best"] is None or value > meta["best"]:
                    meta.update(best=value, best_epoch=epoch, bad_epochs=0)
                    best = jax.tree.map(jnp.copy, state.params)
                else:
                    meta["bad_epochs"] += 1
                if tcfg.patience and meta["bad_epochs"] >= tcfg.patience:
                    meta["done"] = meta["early_stopped"] = True
                    line += f"; early stop (best epoch {meta['best_epoch']})"
            if epoch >= tcfg.epochs:
                meta["done"] = True
            bar.write(line) if show else say(line)
            if meta["done"] or epoch % tcfg.checkpoint_every == 0:
                ckpt.save(int(state.step), state, best, iterator, meta)
            epoch_examples, epoch_start = 0, time.perf_counter()
    bar.close()
    if meta["best"] is None:  # no validation ran (e.g. zero epochs): test the last parameters
        best = state.params
    if ckpt.latest_step() != int(state.step):
        ckpt.save(int(state.step), state, best, iterator, meta)
    ckpt.close()
    results = report(run, best, writer, say)
    writer.close()
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=float))
    return results


def report(run: Run, params, writer: MetricWriter, say) -> dict:
    """Test metrics of `params` beside the baselines, printed as a table and returned."""
    rows = [(run.cfg.model.name, r) for r in evaluate_params(run, params, "test")]
    rows += evaluate_baselines(run, "test")
    for name, r in rows:
        writer.write(0, {"system": name, **r}, "test")
    ks = run.cfg.eval.ks[:1]
    for protocol in run.cfg.eval.protocols:
        sel = [(n, r) for n, r in rows if r["protocol"].startswith(protocol)]
        if not sel:
            continue
        label = "full ranking, all items" if protocol == "full" else sel[0][1]["protocol"]
        keys = tuple(f"{m}@{k}" for k in ks for m in ("hr", "ndcg", "mrr"))
        say(f"\ntest ({label}; {sel[0][1]['num_users']} users, split {run.split.name}):")
        say(results_table(sel, keys))
    return {"split": run.split.name, "results": [{"system": n, **r} for n, r in rows]}
