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
