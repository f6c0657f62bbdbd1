"""Benchmark records and where a number comes from.

A record is a flat JSON object: {system, benchmark, model, dataset, metric, value, unit,
params, context[, spread]}. `context` names the hardware, versions, commit and config, so
that every figure in a table can be traced to the run that made it.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from pathlib import Path

# Where this process's case spent its wall time (seconds by phase), reported beside its
# records so that the suite's log shows what a case costs.
PHASES: dict[str, float] = {}


def context(cfg_dict: dict | None = None) -> dict:
    """Where a number comes from: hardware, device kind and count, versions, commit, config."""
    import jax

    commit = None
    try:
        git = ["git", "rev-parse", "HEAD"]
        here = Path(__file__).parent
        proc = subprocess.run(git, capture_output=True, text=True, timeout=10, cwd=here)
        commit = proc.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    devices = jax.devices()
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_avg_1min": os.getloadavg()[0],
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "jaxlib": __import__("jaxlib").version.__version__,
        "python": platform.python_version(),
        "commit": commit,
        "config": cfg_dict,
    }


class Recorder:
    """`add(metric, value, unit, params=None, spread=None)` → one record of a case, with
    the case's system, benchmark, model, dataset, base params and context; `records` holds
    them in order."""

    def __init__(self, benchmark: str, model: str, dataset: str, params: dict, ctx: dict):
        self.base = {"system": "jaxrec", "benchmark": benchmark, "model": model, "dataset": dataset}
        self.params, self.context = params, ctx
        self.records: list[dict] = []

    def __call__(self, metric, value, unit, params=None, spread=None) -> None:
        rec = {
            **self.base,
            "metric": metric,
            "value": float(value),
            "unit": unit,
            "params": {**self.params, **(params or {})},
            "context": self.context,
        }
        if spread is not None:
            rec["spread"] = [float(x) for x in spread]
        self.records.append(rec)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q`-th percentile of `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def add_peak_memory(add) -> None:
    """The process's peak host RSS, and the device's peak bytes where the backend reports
    them (GPU/TPU), through `add`."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    add("peak_memory", rss, "MiB", {"memory": "host_rss"})
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        add("peak_memory", stats["peak_bytes_in_use"] / 2**20, "MiB", {"memory": "device"})
