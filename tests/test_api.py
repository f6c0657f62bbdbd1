"""jaxrec.api: docs/python-api.md runs as written, and gives what the CLI gives.

The page's Python blocks are executed in order in one namespace (the pandas block only where
pandas is installed); then the API's `evaluate` and `recommend` are compared with
`jaxrec evaluate --workdir` and `jaxrec recommend --workdir --users` on the same workdir, and
training from the in-memory table with training from the same events in a CSV file.
"""

import csv
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import jaxrec
from jaxrec import api
from jaxrec.cli import main
from jaxrec.config import load_config
from jaxrec.errors import ConfigError

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
TIMING_KEYS = ("seconds", "users_per_second")
HAS_PANDAS = importlib.util.find_spec("pandas") is not None


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page's namespace after running every block, in a fresh working directory."""
    where = tmp_path_factory.mktemp("page")
    namespace: dict = {"__name__": "python_api_page"}
    old = os.getcwd()
    os.chdir(where)
    try:
        for block in _blocks():
            if "import pandas" in block and not HAS_PANDAS:
                continue
            exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(old)
    namespace["where"] = where
    return namespace


def _metrics(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in (*TIMING_KEYS, "system")} for r in rows]


def test_the_page_has_runnable_blocks_for_every_method():
    text = "\n".join(_blocks())
    for call in (
        "jaxrec.train(",
        "jaxrec.open(",
        ".evaluate(",
        ".recommend(",
        ".embed(",
        ".export(",
        "jaxrec.load_scorer(",
    ):
        assert call in text, call


def test_the_page_runs_and_the_model_is_a_workdir(page):
    model = page["model"]
    assert isinstance(model, jaxrec.TrainedModel)
    wd = page["where"] / "runs" / "toy"
    assert (wd / "data.parquet").is_file() and (wd / "data.json").is_file()
    recorded = json.loads((wd / "data.json").read_text())["files"]["data.source"]
    assert Path(recorded["path"]) == wd / "data.parquet"
    vectors = page["vectors"]
    assert vectors.users.shape == (len(vectors.user_ids), vectors.users.shape[1])
    assert vectors.items.shape[0] == len(vectors.item_ids) == 80
    assert page["ids"].shape == (1, 5) and not {"p1", "p7", "p3"} & set(page["ids"][0])
    if HAS_PANDAS:
        assert page["small"].recommend([1], k=3).num_rows == 3


def test_evaluate_equals_the_cli(page, tmp_path):
    wd = page["where"] / "runs" / "toy"
    for split in ("test", "valid"):
        out = tmp_path / f"{split}.json"
        assert main(["evaluate", "--workdir", str(wd), "--split", split, "--out", str(out)]) == 0
        cli = json.loads(out.read_text())["results"]
        assert _metrics(page["model"].evaluate(split)) == _metrics(cli)


def test_recommend_equals_the_cli(page, tmp_path):
    wd = page["where"] / "runs" / "toy"
    model = page["model"]
    users = ["42", "3", "nobody", "17"]
    for split in (None, "test"):
        out = tmp_path / "r.csv"
        argv = ["recommend", "--workdir", str(wd), "--users", ",".join(users), "--k", "7"]
        argv += ["--out", str(out)] + (["--split", split] if split else [])
        assert main(argv) == 0
        with open(out, newline="") as f:
            cli = [
                (r["user"], r["item"], int(r["rank"]), np.float32(r["score"]))
                for r in csv.DictReader(f)
            ]
        with pytest.warns(UserWarning, match="'nobody'"):
            table = model.recommend(users, k=7, split=split)
        assert table.schema.names == ["user", "item", "rank", "score"]
        mine = list(zip(*(table[c].to_pylist() for c in table.schema.names), strict=True))
        assert table["user"].unique().to_pylist() == ["42", "3", "17"]  # the order asked
        assert sorted(mine) == sorted((u, i, r, float(s)) for u, i, r, s in cli)


def test_a_file_and_the_same_table_in_memory_train_alike(page):
    assert _metrics(page["from_file"].evaluate()) == _metrics(page["model"].evaluate())
    assert page["from_file"].recommend(["3"], k=5) == page["model"].recommend(["3"], k=5)


def test_other_events_in_a_trained_workdir_are_refused(page):
    wd = page["where"] / "runs" / "toy"
    before = (wd / "data.parquet").read_bytes()
    events = page["events"].slice(0, 3000)
    with pytest.raises(ConfigError, match="trained on other data"):
        jaxrec.train(events, workdir=wd, columns={"user": "visitor", "item": "product"})
    assert (wd / "data.parquet").read_bytes() == before
    assert not (wd / "data.parquet.tmp").exists()


def test_a_config_object_takes_overrides_and_keeps_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = ["train.epochs=1", "data.source=events.csv"]
    cfg = load_config(None)
    assert api._load(cfg, sets) == load_config(None, sets)
    assert api._load(cfg, sets).data.source == str(tmp_path / "events.csv")
    with pytest.raises(ConfigError, match="train.epochs"):
        api._load(cfg, ["train.epochs=-1"])


def test_overrides_as_a_dict_are_typed_as_written():
    sets = api._overrides({"train.epochs": 3, "model.gru4rec.layers": (8, 4), "data.source": "a:b"})
    cfg = load_config(None, sets)
    assert cfg.train.epochs == 3 and cfg.model.gru4rec.layers == (8, 4)
    assert cfg.data.source.endswith("a:b")


def test_unknown_data_types_are_refused_without_pandas(tmp_path):
    with pytest.raises(ConfigError, match="pyarrow Table"):
        jaxrec.train(object(), workdir=tmp_path / "w")
    batch = pa.record_batch({"user": ["a"], "item": ["b"]})
    assert api._arrow_table(batch).num_rows == 1


def test_the_package_exports_the_api_lazily():
    import subprocess
    import sys

    code = "import sys, jaxrec; assert 'jaxrec.api' not in sys.modules; jaxrec.train; jaxrec.open"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "open" not in jaxrec.__all__  # `from jaxrec import *` keeps the builtin open
    assert {"train", "open", "TrainedModel", "load_scorer"} <= set(dir(jaxrec))
