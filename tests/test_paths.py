"""Where configs and data are found: shipped configs by name, relative paths, the data dir.

- `jaxrec train gru4rec_games` reads the shipped config of that name (the repository's
  configs/, carried in the wheel as jaxrec/configs/); an unknown name lists the known ones.
- Paths inside a config file are relative to that file; paths given with --set to the
  working directory.
- `shared:<path>` reads from $JAXREC_DATA_DIR, else ~/.cache/jaxrec (the download cache).
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jaxrec.cli import main
from jaxrec.config import DEFAULT_CONFIG, config_names, load_config
from jaxrec.data import load
from jaxrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_config_is_addressable_by_name():
    names = config_names()
    files = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert files and files | {"default"} == set(names)
    assert names["default"] == DEFAULT_CONFIG
    by_path = load_config(REPO / "configs" / "gru4rec_games.yaml", ["train.epochs=1"])
    assert load_config("gru4rec_games", ["train.epochs=1"]) == by_path
    assert load_config("gru4rec_games.yaml") == load_config(REPO / "configs/gru4rec_games.yaml")


def test_a_file_in_the_working_directory_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("gru4rec_games.yaml").write_text("train:\n  epochs: 7\n")
    assert load_config("gru4rec_games.yaml").train.epochs == 7
    assert load_config("gru4rec_games").train.epochs == 10  # the shipped one


def test_an_unknown_name_lists_the_shipped_configs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("gru4rec_gmaes")
    assert "gru4rec_games" in str(e.value) and "caser_ml100k" in str(e.value)
    assert main(["train", "gru4rec_gmaes", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "the shipped configs are:" in err
    # A path with a folder is a path: the file's own error, no name lookup.
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("configs/nothing.yaml")


def test_paths_in_a_file_follow_the_file_and_set_paths_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "run").mkdir()
    path = tmp_path / "conf" / "c.yaml"
    path.write_text("data:\n  source: events.csv\n  test_source: test.csv\n  split: presplit\n")
    monkeypatch.chdir(tmp_path / "run")
    cfg = load_config(path, ["data.source=mine.csv"])
    assert cfg.data.source == str(tmp_path / "run" / "mine.csv")  # --set: working directory
    assert cfg.data.test_source == str(tmp_path / "conf" / "test.csv")  # the file's folder
    assert load_config(None, ["data.source=x.csv"]).data.source == str(tmp_path / "run/x.csv")
    assert load_config(path, ["data.source=shared:a/b"]).data.source == "shared:a/b"


def test_the_data_dir_is_the_env_else_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXREC_DATA_DIR", str(tmp_path / "d"))
    assert load.data_dir() == tmp_path / "d"
    (tmp_path / "d" / "set").mkdir(parents=True)
    (tmp_path / "d" / "set" / "x.csv").write_text("user,item\n1,2\n")
    assert load.resolve_source("shared:set/x.csv") == tmp_path / "d" / "set" / "x.csv"
    with pytest.raises(ConfigError, match="JAXREC_DATA_DIR"):
        load.resolve_source("shared:set/missing.csv")
    monkeypatch.delenv("JAXREC_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load.data_dir() == tmp_path / "home" / ".cache" / "jaxrec"
    with pytest.raises(ConfigError, match="JAXREC_DATA_DIR"):
        load.resolve_source("shared:set/x.csv")


@pytest.mark.slow
def test_the_wheel_carries_every_config(tmp_path):
    """`pip wheel .` puts the repository's configs/ beside the default in jaxrec/configs/
    (built from a copy, so the checkout gets no build/ folder)."""
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("jaxrec", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)]
    subprocess.run(cmd, check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("jaxrec-*.whl")
    names = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("jaxrec/configs/")}
    want = {f"jaxrec/configs/{p.name}" for p in (REPO / "configs").glob("*.yaml")}
    assert names == want | {"jaxrec/configs/default.yaml"}
