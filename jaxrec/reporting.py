"""Where metrics go: JSON lines (one record per write) and TensorBoard, from process 0 only."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax


class MetricWriter:
    """`write(step, {name: number}, kind)` → `workdir/metrics.jsonl` and TensorBoard scalars."""

    def __init__(self, workdir: str | Path, tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self._file = None
        self._tb = None
        if not self.enabled:
            return
        workdir = Path(workdir)
        self._file = open(workdir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, values: dict, kind: str, tensorboard_prefix: str | None = None):
        """One record of `kind`; TensorBoard tags are `<tensorboard_prefix or kind>/<name>`."""
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
        record = {"step": int(step), "kind": kind, "time": time.time(), **values}
        self._file.write(json.dumps(record, default=float) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, v in scalars.items():
                if math.isfinite(v):
                    self._tb.add_scalar(f"{tensorboard_prefix or kind}/{name}", v, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def results_table(rows: list[tuple[str, dict]], keys: tuple[str, ...]) -> str:
    """A fixed-width table: one row per system (model or baseline), one column per metric."""
    width = max([24, *(len(name) + 2 for name, _ in rows)])
    head = f"{'system':<{width}}" + "".join(f"{k:>14}" for k in keys)
    lines = [head, "-" * len(head)]
    for name, result in rows:
        cells = "".join(
            f"{result[k]:>14.4f}" if isinstance(result.get(k), float) else f"{'-':>14}"
            for k in keys
        )
        lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def test_tables(
    rows: list[tuple[str, dict]],
    protocols: tuple[str, ...],
    ks: tuple[int, ...],
    split_name: str,
    several_targets: bool,
) -> list[str]:
    """The test tables printed at the end of a run, one block per protocol: `rows` are
    (system, metrics) under the config's `protocols`, then those of a task's own `evaluate`
    hook (e.g. rating RMSE) under their own protocol.

    ks: the cut-offs shown. several_targets: held-out sets (Recall/NDCG/Precision under
    full ranking) rather than one target per user (HR/NDCG/MRR).
    """
    blocks = []
    for protocol in protocols:
        sel = [(n, r) for n, r in rows if r["protocol"].startswith(protocol)]
        if not sel:
            continue
        label = "full ranking, all items" if protocol == "full" else sel[0][1]["protocol"]
        several = several_targets and protocol == "full"
        names = ("recall", "ndcg", "precision") if several else ("hr", "ndcg", "mrr")
        if several:
            den = {"all": "|targets|", "min": "min(K, |targets|)"}
            label += f"; recall = hits / {den.get(sel[0][1]['recall_denominator'], '?')}"
        keys = tuple(f"{m}@{k}" for k in ks for m in names)
        blocks.append(_titled(label, sel, split_name, keys))
    other = [(n, r) for n, r in rows if not r["protocol"].startswith(tuple(protocols))]
    for protocol in dict.fromkeys(r["protocol"] for _, r in other):
        sel = [(n, r) for n, r in other if r["protocol"] == protocol]
        skip = ("seconds", "users_per_second")
        keys = tuple(k for k, v in sel[0][1].items() if isinstance(v, float) and k not in skip)
        blocks.append(_titled(protocol, sel, split_name, keys))
    return blocks


def _titled(label: str, sel: list[tuple[str, dict]], split_name: str, keys: tuple) -> str:
    head = f"\ntest ({label}; {sel[0][1]['num_users']} users, split {split_name}):"
    return head + "\n" + results_table(sel, keys)
