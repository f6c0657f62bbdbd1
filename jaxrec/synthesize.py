"""Synthetic user behaviour from a trained GAN generator (CFGAN, IRGAN).

`jaxrec generate --workdir D --users N --out FILE` writes N virtual users. Each one is
conditioned on a real user drawn uniformly (with replacement) from those with a training
history: the generator scores the whole catalogue for that condition (CFGAN's purchase
vector, IRGAN's user), and the virtual row takes as many items as the real user has —
so lengths follow the data's own distribution ("sparsified to realistic lengths") — drawn
without replacement from softmax(scores / temperature) by Gumbel top-k. Temperature 0
takes the top items instead, which for a CFGAN trained to reconstruct purchase vectors
mostly copies the condition; the default 0.1 keeps the generator's preferences (its
sigmoid outputs lie in [0, 1], so 0.1 gives up to e^10 between a sure and an unlikely item)
while producing new rows.

`compare(real, fake, num_items)` is the report printed beside the file: length quantiles,
catalogue coverage, the share of events on the 10 % most popular items, the Gini index of
item popularity, the rank correlation of item popularity, and the mean Jaccard overlap of
each virtual row with its conditioning user's real row (1.0 would be copying).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import numpy as np

from jaxrec.errors import ConfigError
from jaxrec.tasks import FAMILIES
from jaxrec.tasks.generate import generate

DEFAULT_TEMPERATURE = 0.1


def generate_rows(run, params, num_users: int, *, seed: int = 0, temperature=DEFAULT_TEMPERATURE,
                  chunk_size: int = 256) -> tuple[np.ndarray, list[np.ndarray]]:  # fmt: skip
    """→ (conditioning dense user ids [N], N arrays of dense item ids, distinct per row)."""
    if FAMILIES.get(run.cfg.model.name) != "adversarial":
        raise ConfigError(
            f"generate needs a GAN workdir (cfgan, irgan); this one trained {run.cfg.model.name!r}"
        )
    if num_users < 1:
        raise ConfigError(f"--users must be at least 1, got {num_users}")
    if temperature < 0:
        raise ConfigError(f"--temperature must be >= 0, got {temperature}")
    history, _ = run.split.stage("test")  # the training rows (and validation, if any)
    known = np.flatnonzero(history.lengths > 0).astype(np.int32)
    rng = np.random.default_rng(seed)
    cond = rng.choice(known, size=num_users, replace=True).astype(np.int32)
    lengths = history.lengths[cond]
    width = int(history.lengths.max())
    n = int(min(lengths.max(), run.data.num_items))
    draw = jax.jit(generate, static_argnames=("score_fn", "n", "temperature"))
    key = jax.random.key(seed)
    rows: list[np.ndarray] = []
    for lo in range(0, num_users, chunk_size):
        chunk = cond[lo : lo + chunk_size]
        padded = np.concatenate([chunk, np.repeat(chunk[:1], chunk_size - len(chunk))])
        ids, mask = history.padded(padded, width)
        out = draw(run.task.score, params, padded, ids, mask, jax.random.fold_in(key, lo),
                   n=n, temperature=float(temperature))  # fmt: skip
        out = np.asarray(jax.device_get(out))[: len(chunk)]
        rows += [out[j, : lengths[lo + j]] for j in range(len(chunk))]
    return cond, rows


def _gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0: uniform, → 1: all on one item)."""
    x = np.sort(counts.astype(np.float64))
    if x.sum() == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / denom) if denom else 0.0


def compare(real_rows: list[np.ndarray], fake_rows: list[np.ndarray], cond_rows, num_items: int):
    """Distribution report of virtual rows beside the real ones (see module doc) → dict."""

    def stats(rows):
        lengths = np.array([len(r) for r in rows])
        counts = np.bincount(np.concatenate(rows), minlength=num_items) if rows else None
        return lengths, counts

    real_len, real_cnt = stats(real_rows)
    fake_len, fake_cnt = stats(fake_rows)
    head = np.argsort(-real_cnt, kind="stable")[: max(1, num_items // 10)]

    def side(lengths, counts):
        return {
            "users": int(len(lengths)),
            "events": int(lengths.sum()),
            "length_mean": float(lengths.mean()),
            "length_p50": float(np.percentile(lengths, 50)),
            "length_p90": float(np.percentile(lengths, 90)),
            "coverage": float((counts > 0).mean()),
            "top10pct_share": float(counts[head].sum() / max(counts.sum(), 1)),
            "popularity_gini": _gini(counts),
        }

    jaccard = [
        len(np.intersect1d(f, c)) / max(len(np.union1d(f, c)), 1)
        for f, c in zip(fake_rows, cond_rows, strict=True)
    ]
    return {
        "real": side(real_len, real_cnt),
        "generated": side(fake_len, fake_cnt),
        "popularity_spearman": _spearman(real_cnt, fake_cnt),
        "mean_jaccard_with_condition": float(np.mean(jaccard)),
    }


def format_report(report: dict) -> str:
    keys = list(report["real"])
    lines = [f"{'':<18}{'real':>12}{'generated':>12}"]
    for k in keys:
        r, g = report["real"][k], report["generated"][k]
        lines.append(f"{k:<18}{r:>12.4g}{g:>12.4g}")
    lines.append(
        f"item-popularity rank correlation (Spearman): {report['popularity_spearman']:.3f}"
    )
    lines.append(
        f"mean Jaccard of a virtual row with its conditioning user's row: "
        f"{report['mean_jaccard_with_condition']:.3f}"
    )
    return "\n".join(lines)


def write_generated(path: str | Path, run, params, num_users: int, *, seed: int = 0,
                    temperature=DEFAULT_TEMPERATURE) -> dict:  # fmt: skip
    """Generate, write `user,item` CSV (virtual users `gen-<n>`, raw item ids) and
    `<path>.report.json` → the report."""
    path = Path(path)
    cond, rows = generate_rows(run, params, num_users, seed=seed, temperature=temperature)
    history, _ = run.split.stage("test")
    real = [history.row(u) for u in np.flatnonzero(history.lengths > 0)]
    report = compare(real, rows, [history.row(u) for u in cond], run.data.num_items)
    report["temperature"], report["seed"] = float(temperature), int(seed)
    iv = run.data.item_vocab
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item"])
        for n, row in enumerate(rows):
            w.writerows((f"gen-{n}", iv[i]) for i in row)
    tmp.replace(path)
    path.with_name(path.name + ".report.json").write_text(json.dumps(report, indent=2))
    return report
