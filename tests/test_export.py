"""Compiled scorers: export → verify → load → call, against the in-process model."""

import json
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from tiny import FAMILIES, overrides

from jaxrec import cli, evaluation, trainer
from jaxrec.config import load_config
from jaxrec.data import splits
from jaxrec.serving.export import export_run
from jaxrec.serving.scorer import ScorerError, UnknownIdError, exported_score, load_scorer
from jaxrec.workdir import open_trained

SERVED = ["gru4rec", "cdae"]  # one that reads only items, one that also needs the user id
_CACHE: dict = {}


def _exported(model, tmp_path_factory, ratings_file):
    """SERVED models are trained with `jaxrec train` (the CLI tests read their workdir); the
    others are exported at their initial parameters, which test the export just as well."""
    if model not in _CACHE:
        root = tmp_path_factory.mktemp(model)
        sets = overrides(model, root, ratings_file)
        if model in SERVED:
            argv = ["train", "--workdir", str(root / "work")]
            for s in sets:
                argv += ["--set", s]
            assert cli.main(argv) == 0
            trained = open_trained(root / "work")
            run, best = trained.run, trained.params
        else:
            run = trainer.prepare(load_config(None, sets))
            best = run.state.params
        path = export_run(run, best, root / "scorer", max_k=20)
        _CACHE[model] = run, best, path, root
    return _CACHE[model]


@pytest.fixture(scope="module", params=[f[0] for f in FAMILIES])
def any_family(request, tmp_path_factory, ratings_file):
    return _exported(request.param, tmp_path_factory, ratings_file)


@pytest.fixture(scope="module", params=SERVED)
def exported(request, tmp_path_factory, ratings_file):
    return _exported(request.param, tmp_path_factory, ratings_file)


def test_exported_scores_equal_jitted_scores(any_family):
    run, best, path, _ = any_family
    fn = exported_score(path)
    params = jax.device_get(best)
    hist, _ = run.split.stage("test")
    width = trainer.history_width(run)  # the artifact's history columns
    for n in (3, 16):  # two batch sizes through the one symbolic-batch module
        users = np.arange(n, dtype=np.int32)
        ids, mask = hist.padded(users, width)
        want = jax.jit(run.task.score)(params, users, ids, mask)
        got = fn(params, users, ids, mask)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_scorer_recommend_equals_in_process_recommend(any_family):
    run, best, path, _ = any_family
    scorer = load_scorer(path)
    hist, _ = run.split.stage("test")
    users = np.flatnonzero(hist.lengths > 0)[:7].astype(np.int32)
    inputs = [run.data.item_vocab[hist.row(u)].tolist() for u in users]
    raw_users = run.data.user_vocab[users].tolist() if scorer.uses_user_ids else None
    ids, scores = scorer.recommend(inputs, k=10, users=raw_users)
    from jaxrec import trainer

    want_ids, want_scores = evaluation.recommend(
        trainer.score_fn(run, best), run.split, "test", users, 10, max_history=16
    )
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert (ids == run.data.item_vocab[want_ids]).all()
    for row, history in zip(ids, inputs, strict=True):  # seen items are never recommended
        assert not set(row) & set(history)


@pytest.mark.parametrize("model", ["caser", "nextitnet"])
def test_histories_are_cut_to_what_the_model_reads(model, tmp_path_factory, ratings_file):
    """Caser reads its last L items, NextItNet its last max_length: evaluation and export hand
    no more (fewer shapes to compile), and the metrics are those of the whole 16 columns."""
    run, best, path, _ = _exported(model, tmp_path_factory, ratings_file)
    width = {"caser": run.cfg.model.caser.length, "nextitnet": 12}[model]
    assert trainer.history_width(run) == width < run.cfg.eval.max_history == 16
    assert load_scorer(path).history_length == width
    cut = trainer.evaluate_params(run, best, "test", ("full",))[0]
    whole = evaluation.evaluate(trainer.score_fn(run, best), run.split, "test",
                                ks=run.cfg.eval.ks, max_history=16)  # fmt: skip
    for name, value in whole.items():
        if isinstance(value, str):  # protocol, stage, recall denominator
            assert cut[name] == value
        elif name not in ("seconds", "users_per_second"):
            assert cut[name] == pytest.approx(value, rel=1e-6), name


def test_metadata_records_versions_and_checksums(exported):
    _, _, path, _ = exported
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["platforms"] == ["cpu", "cuda"]
    assert meta["jax_version"] == jax.__version__
    assert meta["max_k"] == 20 and meta["history_length"] == 16
    assert set(meta["sha256"]) == {p.name for p in path.iterdir()} - {"metadata.json"}


def test_scorer_imports_no_training_code(exported):
    _, _, path, _ = exported
    code = f"""
import sys, jaxrec
s = jaxrec.load_scorer({str(path)!r})
ids, scores = s.recommend([list(s.item_vocab[:3])], k=5, users=[s.user_vocab[0]])
assert ids.shape == (1, 5), ids.shape
bad = [m for m in sys.modules if m.split(".")[0] in ("flax", "optax", "orbax", "grain")
       or m.startswith(("jaxrec.models", "jaxrec.tasks", "jaxrec.trainer"))]
assert not bad, bad
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_batches_are_bucketed_not_recompiled(exported):
    _, _, path, _ = exported
    scorer = load_scorer(path)
    items = scorer.item_vocab.tolist()
    users = scorer.user_vocab[:5].tolist()
    scorer.recommend([items[:2]] * 3, users=users[:3])
    scorer.recommend([items[:3]] * 4, users=users[:4])  # same bucket (4 requests, ≤ 8 excluded)
    assert scorer._recommend._cache_size() == 1
    scorer.recommend([items[:2]] * 5, users=users[:5])  # next bucket: 8
    assert scorer._recommend._cache_size() == 2


def test_exclude_and_k(exported):
    _, _, path, _ = exported
    scorer = load_scorer(path)
    items, users = scorer.item_vocab.tolist(), scorer.user_vocab[:1].tolist()
    first, _ = scorer.recommend([items[:2]], k=5, users=users)
    again, _ = scorer.recommend([items[:2]], k=5, exclude=[[first[0, 0]]], users=users)
    assert first[0, 0] not in again[0] and again[0, 0] == first[0, 1]
    with pytest.raises(ValueError, match="max_k"):
        scorer.recommend([items[:2]], k=21, users=users)


def test_unknown_ids_are_reported(exported):
    _, _, path, _ = exported
    scorer = load_scorer(path)
    items, users = scorer.item_vocab.tolist(), scorer.user_vocab[:1].tolist()
    with pytest.raises(UnknownIdError, match="'nope'"):
        scorer.recommend([[items[0], "nope"]], users=users)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids, _ = scorer.recommend([[items[0], "nope"]], users=users, unknown="skip")
    want, _ = scorer.recommend([[items[0]]], users=users)
    assert (ids == want).all() and "nope" in str(caught[0].message)


def test_damaged_artifact_is_refused(exported, tmp_path):
    import shutil

    _, _, path, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    blob = bytearray((copy / "params.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (copy / "params.npz").write_bytes(bytes(blob))
    with pytest.raises(ScorerError, match="sha256 mismatch"):
        load_scorer(copy)
    (copy / "score.jax").unlink()
    with pytest.raises(ScorerError, match="missing"):
        load_scorer(copy)
    with pytest.raises(ScorerError, match="not a jaxrec scorer"):
        load_scorer(tmp_path)


def test_incompatible_jax_and_malformed_requests_are_clear_errors(exported, tmp_path):
    import shutil

    _, _, path, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["calling_convention_version"], meta["jax_version"] = 99, "9.9.9"
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ScorerError, match="exported with jax 9.9.9"):
        load_scorer(copy)
    scorer = load_scorer(path)
    items, users = scorer.item_vocab.tolist(), scorer.user_vocab[:1].tolist()
    for bad, where in [
        (items[:2], "inputs\\[0\\] must be a list"),  # rank 1: one request not wrapped
        ("abc", "inputs must be a list"),
        ([[[items[0]]]], "inputs\\[0\\]\\[0\\] is a list"),  # rank 3
        ([[1.5]], "inputs\\[0\\]\\[0\\] is a float"),  # wrong dtype
    ]:
        with pytest.raises(ScorerError, match=where):
            scorer.recommend(bad, users=users * max(len(bad), 1))
    with pytest.raises(ScorerError, match="exclude\\[0\\]"):
        scorer.recommend([items[:1]], users=users, exclude=[items[0]])


def test_export_never_loses_an_existing_artifact(exported, monkeypatch):
    from jaxrec import errors
    from jaxrec.serving import export as export_mod

    run, best, path, root = exported
    before = (path / "metadata.json").read_text()
    with pytest.raises(errors.ConfigError, match="--force"):
        export_run(run, best, path)

    def broken(params):
        raise OSError("disk full")

    monkeypatch.setattr(export_mod, "flatten_params", broken)
    with pytest.raises(OSError, match="disk full"):
        export_run(run, best, path, force=True, max_k=20)
    assert (path / "metadata.json").read_text() == before
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    load_scorer(path)


def test_cli_export_recommend_and_embed(exported, tmp_path):
    import csv

    import pyarrow.parquet as pq

    run, best, _, root = exported
    work = root / "work"
    art = tmp_path / "art"
    assert cli.main(["export", "--workdir", str(work), "--out", str(art), "--max-k", "10"]) == 0
    assert cli.main(["export", "--workdir", str(work), "--out", str(art)]) == 2  # exists
    # histories as SASRec 'user item' lines, raw ids; an unknown item is skipped
    hist, _ = run.split.stage("test")
    users = np.flatnonzero(hist.lengths > 0)[:4]
    lines = [
        f"{run.data.user_vocab[u]} {run.data.item_vocab[i]}" for u in users for i in hist.row(u)
    ]
    (tmp_path / "h.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "recs.csv"
    argv = ["recommend", "--scorer", str(art), "--input", str(tmp_path / "h.txt")]
    assert cli.main(argv + ["--format", "sasrec", "--k", "3", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * len(users)
    scorer = load_scorer(art)
    first_user = rows[0]["user"]
    u = int(np.flatnonzero(run.data.user_vocab == first_user)[0])
    want, _ = scorer.recommend([run.data.item_vocab[hist.row(u)].tolist()], k=3, users=[first_user])
    assert [r["item"] for r in rows[:3]] == want[0].tolist()

    emb = tmp_path / "emb.parquet"
    assert cli.main(["embed", "--workdir", str(work), "--out", str(emb)]) == 0
    table = pq.read_table(emb).to_pydict()
    kinds = np.array(table["kind"])
    assert (kinds == "item").sum() == run.split.num_items
    vectors = np.array(table["vector"], dtype=np.float32)
    user_rows = np.flatnonzero(kinds == "user")
    u0 = int(np.flatnonzero(run.data.user_vocab == table["id"][user_rows[0]])[0])
    # a user's representation reads the whole history, as `recommend` serves
    ids, mask = splits.history(run.split).padded(np.array([u0], np.int32), 16)
    want = jax.jit(run.task.represent)(best, np.array([u0], np.int32), ids, mask)
    np.testing.assert_allclose(vectors[user_rows[0]], np.asarray(want)[0], rtol=1e-5, atol=1e-6)


def test_concurrent_callers_get_the_serial_answers(exported):
    from concurrent.futures import ThreadPoolExecutor

    _, _, path, _ = exported
    scorer = load_scorer(path)
    items, users = scorer.item_vocab.tolist(), scorer.user_vocab.tolist()
    rng = np.random.default_rng(0)
    requests = [
        (
            [items[i] for i in rng.choice(len(items), rng.integers(1, 6), replace=False)],
            users[rng.integers(len(users))],
            int(rng.integers(1, 11)),
        )
        for _ in range(50)
    ]
    serial = [scorer.recommend([h], k=k, users=[u]) for h, u, k in requests]

    def caller(t):  # 500 requests per thread, each thread in its own order
        order = np.random.default_rng(t).integers(len(requests), size=500)
        return [(j, scorer.recommend([requests[j][0]], k=requests[j][2], users=[requests[j][1]]))
                for j in order]  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        answers = [a for part in pool.map(caller, range(8)) for a in part]
    assert len(answers) == 8 * 500
    for j, (ids, scores) in answers:
        np.testing.assert_array_equal(ids, serial[j][0])
        np.testing.assert_array_equal(scores, serial[j][1])
