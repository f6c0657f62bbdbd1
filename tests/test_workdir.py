"""A trained workdir, through the CLI: every later command uses what the final test used.

For every model, with a validation stage and without (a refit, `data.train_on_valid`):
`jaxrec evaluate` reproduces the test metrics `jaxrec train` saved, to the last bit; the
`recommend --split test` CSV, scored here by a scorer written for this test (not
`jaxrec.metrics`), gives the same metrics; an exported scorer serves the same top-K as
`jaxrec recommend`. Then: the GANs' `generate` draws from the trained generator, and a data
file edited after training never shifts ids or makes a checkpoint look corrupt.
"""

import csv
import json
import math

import numpy as np
import pytest
from tiny import FAMILIES, overrides

from jaxrec.cli import main
from jaxrec.scorer import load_scorer
from jaxrec.workdir import open_trained

MODELS = [name for name, _ in FAMILIES]
TIMING_KEYS = ("seconds", "users_per_second")


def _argv(command, *args, sets=()):
    out = [command, *map(str, args)]
    for s in sets:
        out += ["--set", s]
    return out


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _lists(rows) -> dict[str, list[str]]:
    """{user: [items by rank]} of a recommend CSV."""
    out: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        out.setdefault(r["user"], []).append((int(r["rank"]), r["item"]))
    return {u: [i for _, i in sorted(v)] for u, v in out.items()}


def independent_metrics(lists, targets, ks, recall_denominator):
    """Mean top-K metrics of ranked lists {user: [item]} against {user: [target items]}, in
    float64, from the definitions (binary relevance; a list slot is a hit when its item is
    a target; NDCG's ideal DCG over min(k, |T|) hits; recall over min(k, |T|) or |T|; MRR:
    1 / rank of the first hit within k). Users without targets are not counted."""
    sums: dict[str, float] = {}
    users = [u for u, t in targets.items() if len(t)]
    for u in users:
        want, ranked = set(targets[u]), lists.get(u, [])
        n_rel = len(targets[u])
        for k in ks:
            hit = [item in want for item in ranked[:k]]
            hits = sum(hit)
            n_ideal = min(n_rel, k)
            idcg = sum(1 / math.log2(r + 2) for r in range(n_ideal))
            dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hit) if h)
            first = next((r for r, h in enumerate(hit) if h), None)
            denom = n_ideal if recall_denominator == "min" else n_rel
            values = {
                "hr": float(hits > 0),
                "recall": hits / denom,
                "ndcg": dcg / idcg,
                "mrr": 0.0 if first is None else 1 / (first + 1),
                "precision": hits / k,
            }
            for name, v in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
    return {k: v / len(users) for k, v in sums.items()}, len(users)


def _metrics_only(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in (*TIMING_KEYS, "system")}


@pytest.mark.parametrize("validation", [True, False], ids=["valid", "refit"])
@pytest.mark.parametrize("model", MODELS)
def test_workdir_commands_reproduce_what_train_printed(model, validation, tmp_path, ratings_file):
    sets = [*overrides(model, tmp_path, ratings_file), "train.epochs=2", "eval.ks=[5,10]"]
    if not validation:
        sets.append("data.train_on_valid=true")
    wd = tmp_path / "work"
    assert main(_argv("train", "--workdir", wd, sets=sets)) == 0
    saved = json.loads((wd / "results.json").read_text())
    assert saved["parameters"]["parameters"] == ("best" if validation else "last")
    mine = [r for r in saved["results"] if r["system"] == model]

    # evaluate: the same numbers, exactly
    ev_path = tmp_path / "evaluate.json"
    assert main(_argv("evaluate", "--workdir", wd, "--out", ev_path)) == 0
    ev = json.loads(ev_path.read_text())
    assert ev["parameters"]["text"] == saved["parameters"]["text"]
    assert [_metrics_only(r) for r in ev["results"]] == [_metrics_only(r) for r in mine]

    # recommend --split test, scored independently: the printed full-ranking metrics
    trained = open_trained(wd)
    run = trained.run
    full = next((r for r in mine if r["protocol"] == "full"), None)
    if full is not None:  # AutoRec reports its rating RMSE only
        out = tmp_path / "test.csv"
        argv = _argv("recommend", "--workdir", wd, "--split", "test", "--k", 10, "--out", out)
        assert main(argv) == 0
        assert json.loads(out.with_name("test.csv.json").read_text())["stage"] == "test"
        _, target = run.split.stage("test")
        uv, iv = run.data.user_vocab, run.data.item_vocab
        targets = {str(uv[u]): iv[target.row(u)].tolist() for u in range(target.num_rows)}
        got, n = independent_metrics(
            _lists(_read_csv(out)), targets, (5, 10), full["recall_denominator"]
        )
        assert n == full["num_users"]
        for name, value in got.items():
            assert value == pytest.approx(full[name], rel=1e-5, abs=1e-6), name

    # serving: recommend's default lists == an exported scorer's, from the whole history
    served = tmp_path / "serve.csv"
    assert main(_argv("recommend", "--workdir", wd, "--k", 5, "--out", served)) == 0
    meta = json.loads(served.with_name("serve.csv.json").read_text())
    assert meta["stage"] == "all" and meta["parameters"]["parameters"] == ("best" if validation else "last")
    lists = _lists(_read_csv(served))
    assert main(_argv("export", "--workdir", wd, "--out", tmp_path / "art", "--max-k", 5)) == 0
    scorer = load_scorer(tmp_path / "art")
    users = sorted(lists)[:12]
    uv, iv = run.data.user_vocab.tolist(), run.data.item_vocab
    assert not run.split.name.startswith("heldout")  # else run.data is not what is served
    events = run.data  # the whole log: every user's events, oldest first
    histories = []
    for u in users:
        dense = uv.index(u)
        histories.append(iv[events.item_ids[events.user_ids == dense]].tolist())
    ids, _ = scorer.recommend(histories, k=5, users=users if scorer.uses_user_ids else None)
    for u, row in zip(users, ids.tolist(), strict=True):
        assert [i for i in row if i] == lists[u], u
        assert not set(lists[u]) & set(histories[users.index(u)])  # history excluded


@pytest.mark.parametrize(
    "model, sets",
    [("cfgan", ["train.epochs=15", "optim.learning_rate=0.01"]), ("irgan", ["train.epochs=3"])],
)
def test_generate_draws_from_the_trained_generator(model, sets, tmp_path, ratings_file):
    """`generate` writes the trained generator's rows (no validation stage: the GANs' own
    protocol), and that generator has learned what each user holds: its top items overlap
    the conditioning user's row about twice as much as the initial generator's."""
    from jaxrec.synthesize import compare, generate_rows

    sets = [*overrides(model, tmp_path, ratings_file), *sets, "data.train_on_valid=true"]
    wd = tmp_path / "work"
    assert main(_argv("train", "--workdir", wd, sets=sets)) == 0
    out = tmp_path / "gen.csv"
    assert main(_argv("generate", "--workdir", wd, "--users", 200, "--out", out)) == 0
    trained = open_trained(wd)
    run = trained.run
    _, rows = generate_rows(run, trained.params, 200)
    assert [run.data.item_vocab[r].tolist() for r in rows] == list(_lists_gen(out).values())
    history, _ = run.split.stage("test")
    real = [history.row(u) for u in np.flatnonzero(history.lengths > 0)]

    def overlap(params):
        cond, top = generate_rows(run, params, 200, temperature=0.0)
        report = compare(real, top, [history.row(u) for u in cond], run.data.num_items)
        return report["mean_jaccard_with_condition"]

    # measured: CFGAN 0.120 vs 0.053, IRGAN 0.124 vs 0.060 (8 fake CPU devices: same draws)
    assert overlap(trained.params) > 1.5 * overlap(run.state.params)


def _lists_gen(path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in _read_csv(path):
        out.setdefault(r["user"], []).append(r["item"])
    return out
