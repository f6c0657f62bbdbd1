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
from jaxrec.serving.scorer import load_scorer
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
        assert n == full["num_users"] == len(_lists(_read_csv(out)))  # the same users
        for name, value in got.items():
            assert value == pytest.approx(full[name], rel=1e-5, abs=1e-6), name

    # serving: recommend's default lists == an exported scorer's, from the whole history
    served = tmp_path / "serve.csv"
    assert main(_argv("recommend", "--workdir", wd, "--k", 5, "--out", served)) == 0
    meta = json.loads(served.with_name("serve.csv.json").read_text())
    assert meta["stage"] == "all" and meta["parameters"]["parameters"] == (
        "best" if validation else "last"
    )
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

    assert overlap(trained.params) > 1.5 * overlap(run.state.params)


def _lists_gen(path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in _read_csv(path):
        out.setdefault(r["user"], []).append(r["item"])
    return out


def _csv_log(path, seed=0):
    """A `user,item,timestamp` CSV with string ids (`user-007`, `item-000`…), chronological."""
    from jaxrec.data import synthetic

    data = synthetic.generate(80, 40, 8, 4, seed)
    lines = ["user,item,timestamp"]
    for u, i, t in zip(data.user_ids, data.item_ids, data.timestamps, strict=True):
        lines.append(f"user-{u:03d},item-{i:03d},{int(t)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _train_on(path, wd, *flags, sets=()):
    sets = [f"data.source={path}", "data.format=csv", "model.gru4rec.layers=[16]",
            "loss.n_sample=16", "train.batch_size=16", "train.epochs=1",
            "eval.protocols=[full]", "eval.baselines=[]", *sets]  # fmt: skip
    return main(_argv("train", "--workdir", wd, *flags, sets=sets))


def test_a_data_file_edited_after_training_never_shifts_ids(tmp_path, capsys):
    """Renaming an item in the file: export keeps the trained item list, recommend maps the
    histories through the saved vocabularies and reports the unknown item, evaluate and a
    resumed train refuse with what changed; no checkpoint is ever taken for corrupt."""
    path = _csv_log(tmp_path / "log.csv")
    wd = tmp_path / "work"
    assert _train_on(path, wd) == 0
    saved_items = np.load(wd / "vocab.npz", allow_pickle=False)["items"]
    before = tmp_path / "before.csv"
    assert main(_argv("recommend", "--workdir", wd, "--out", before)) == 0
    capsys.readouterr()

    path.write_text(
        path.read_text().replace("item-000", "item-zzz")
    )  # every id after it would shift
    assert main(_argv("export", "--workdir", wd, "--out", tmp_path / "art")) == 0
    err = capsys.readouterr().err
    assert "data changed since training" in err and "log.csv" in err and "'item-zzz'" in err
    assert load_scorer(tmp_path / "art").item_vocab.tolist() == saved_items.tolist()

    after = tmp_path / "after.csv"
    assert main(_argv("recommend", "--workdir", wd, "--out", after)) == 0
    assert "1 items unknown to the workdir" in capsys.readouterr().err
    old, new = _lists(_read_csv(before)), _lists(_read_csv(after))
    log = [line.split(",") for line in path.read_text().splitlines()[1:]]
    touched = {u for u, i, _ in log if i == "item-zzz"}
    untouched = [u for u in old if u not in touched]
    assert untouched and all(new[u] == old[u] for u in untouched)  # same ids, same lists
    assert set().union(*map(set, new.values())) <= set(saved_items.tolist())

    assert main(_argv("evaluate", "--workdir", wd)) == 2
    assert "the data changed since training" in capsys.readouterr().err
    assert _train_on(path, wd) == 2
    err = capsys.readouterr().err
    assert "trained on other data" in err and "log.csv" in err
    assert not (tmp_path / "work" / "checkpoints.corrupt").exists()
    assert (tmp_path / "work" / "checkpoints").is_dir()


def _stopped_after_epoch_1_of_2(path, wd):
    """Train 2 epochs, then drop the newest checkpoint: a run stopped after epoch 1."""
    import shutil

    sets = ["train.epochs=2", "train.checkpoint_every=1", "train.keep_checkpoints=2"]
    assert _train_on(path, wd, sets=sets) == 0
    steps = sorted(int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) == 2
    shutil.rmtree(wd / "checkpoints" / str(steps[-1]))
    (wd / "results.json").unlink()
    return sets


def test_a_new_item_refuses_resuming_unless_forced_and_never_quarantines(tmp_path, capsys):
    """An unfinished run whose file gained an item: resuming is refused with what changed;
    --force trains the rest on the new events through the saved ids (the unknown item
    skipped), after which the same command and the workdir commands accept the data."""
    import warnings

    from jaxrec.checkpoint import CorruptCheckpointWarning

    path = _csv_log(tmp_path / "log.csv")
    wd = tmp_path / "work"
    sets = _stopped_after_epoch_1_of_2(path, wd)
    with open(path, "a") as f:
        f.write("user-000,item-new,999999\n")
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCheckpointWarning)
        assert _train_on(path, wd, sets=sets) == 2
        assert "bytes" in capsys.readouterr().err  # says what changed: the file's size
        assert _train_on(path, wd, "--force", sets=sets) == 0
        out = capsys.readouterr().out
        assert "continuing on changed data" in out and "epoch 2:" in out
        assert json.loads((wd / "results.json").read_text())["parameters"]["epoch"] >= 1
        assert _train_on(path, wd, sets=sets) == 0  # the same command again: only tests
        assert main(_argv("evaluate", "--workdir", wd)) == 0
        assert "'item-new'" in capsys.readouterr().err  # still reported, never renumbered
    assert not (wd / "checkpoints.corrupt").exists()


def test_autorec_maps_a_changed_ratings_file_through_the_saved_ids(tmp_path, ratings_file):
    """AutoRec splits the ratings itself: from the run's mapped events, so a new user in
    the file neither changes its shapes nor makes a checkpoint look corrupt."""
    import warnings

    from jaxrec.checkpoint import CorruptCheckpointWarning

    sets = overrides("autorec", tmp_path, ratings_file)
    wd = tmp_path / "work"
    assert main(_argv("train", "--workdir", wd, sets=sets)) == 0
    data = tmp_path / "u.data"
    with open(data, "a") as f:
        f.write("999\t1\t5\t999999\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCheckpointWarning)
        out = tmp_path / "r.csv"
        assert main(_argv("recommend", "--workdir", wd, "--out", out)) == 0
        assert main(_argv("train", "--workdir", wd, "--force", sets=sets)) == 0
    assert "999" not in {r["user"] for r in _read_csv(out)}


def test_a_resume_with_fewer_epochs_marks_the_run_finished(tmp_path):
    path = _csv_log(tmp_path / "log.csv")
    wd = tmp_path / "work"
    _stopped_after_epoch_1_of_2(path, wd)
    assert _train_on(path, wd, "--force", sets=["train.epochs=1"]) == 0
    assert main(_argv("recommend", "--workdir", wd, "--out", tmp_path / "r.csv")) == 0


def test_a_run_that_fails_to_load_its_data_claims_nothing(tmp_path, capsys):
    """The corrected command is not refused as 'a different config'."""
    wd = tmp_path / "work"
    assert _train_on(tmp_path / "missing.csv", wd) == 2
    assert not (wd / "config.yaml").exists()
    capsys.readouterr()
    assert _train_on(_csv_log(tmp_path / "log.csv"), wd) == 0


def test_an_unfinished_run_is_refused_unless_the_newest_checkpoint_is_asked_for(tmp_path, capsys):
    path = _csv_log(tmp_path / "log.csv")
    wd = tmp_path / "work"
    _stopped_after_epoch_1_of_2(path, wd)
    capsys.readouterr()
    out = tmp_path / "r.csv"
    assert main(_argv("recommend", "--workdir", wd, "--out", out)) == 2
    assert "training has not finished" in capsys.readouterr().err
    assert main(_argv("recommend", "--workdir", wd, "--out", out, "--newest-checkpoint")) == 0
    assert "has not finished" in capsys.readouterr().out
    meta = json.loads(out.with_name("r.csv.json").read_text())["parameters"]
    assert meta["finished"] is False and meta["epoch"] == 1


def test_recommend_for_chosen_users_and_a_missing_out_folder(tmp_path, capsys):
    path = _csv_log(tmp_path / "log.csv")
    wd = tmp_path / "work"
    assert _train_on(path, wd) == 0
    out = tmp_path / "r.csv"
    users = tmp_path / "users.txt"
    users.write_text("user-003\nuser-010\nnobody\n")
    capsys.readouterr()
    assert main(_argv("recommend", "--workdir", wd, "--users", users, "--out", out)) == 0
    assert "'nobody'" in capsys.readouterr().err
    assert sorted(_lists(_read_csv(out))) == ["user-003", "user-010"]
    argv = _argv("recommend", "--workdir", wd, "--users", "user-005", "--out", out)
    assert main(argv) == 0 and list(_lists(_read_csv(out))) == ["user-005"]
    missing = tmp_path / "no" / "r.csv"
    assert main(_argv("recommend", "--workdir", wd, "--out", missing)) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["irgan", "multvae"])
def test_presplit_files_without_validation_scored_from_the_raw_test_file(model, tmp_path):
    """The GANs' protocol (train and test files, no validation file): evaluate reproduces
    train's figures, and the recommend CSV scored against the test file itself (read here
    as text, no jaxrec code) gives them too."""
    from jaxrec.data import synthetic

    data = synthetic.generate(90, 50, 10, 4, 1)
    train, test = ["user\titem"], ["user\titem"]
    for u in range(data.num_users):
        items = data.item_ids[data.user_ids == u]
        for k, i in enumerate(dict.fromkeys(items.tolist())):  # distinct items, as IRGAN's
            (test if k % 5 == 4 else train).append(f"u{u}\tv{i}")
    (tmp_path / "train.tsv").write_text("\n".join(train) + "\n")
    (tmp_path / "test.tsv").write_text("\n".join(test) + "\n")
    sets = [*overrides(model, tmp_path, None), "data.split=presplit", "data.format=csv",
            f"data.source={tmp_path / 'train.tsv'}", f"data.test_source={tmp_path / 'test.tsv'}",
            "eval.ks=[3,5]", "train.epochs=2"]  # fmt: skip
    wd = tmp_path / "work"
    assert main(_argv("train", "--workdir", wd, sets=sets)) == 0
    saved = json.loads((wd / "results.json").read_text())
    assert saved["parameters"]["parameters"] == "last"
    full = next(r for r in saved["results"] if r["system"] == model and r["protocol"] == "full")
    ev_path = tmp_path / "ev.json"
    assert main(_argv("evaluate", "--workdir", wd, "--out", ev_path)) == 0
    assert _metrics_only(json.loads(ev_path.read_text())["results"][0]) == _metrics_only(full)
    out = tmp_path / "test.csv"
    assert main(_argv("recommend", "--workdir", wd, "--split", "test", "--k", 5, "--out", out)) == 0
    targets: dict[str, list[str]] = {}
    for line in test[1:]:
        u, i = line.split("\t")
        targets.setdefault(u, []).append(i)
    got, n = independent_metrics(_lists(_read_csv(out)), targets, (3, 5), "min")
    assert n == full["num_users"]
    for name, value in got.items():
        assert value == pytest.approx(full[name], rel=1e-5, abs=1e-6), name
