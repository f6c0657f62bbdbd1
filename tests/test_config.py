import pytest

from jaxrec.config import Config, load_config, to_dict
from jaxrec.errors import ConfigError


def test_default_config_and_overrides():
    cfg = load_config(
        None, ["train.epochs=3", "model.gru4rec.layers=[64, 32]", "optim.clip_norm=1"]
    )
    assert isinstance(cfg, Config)
    assert cfg.train.epochs == 3
    assert cfg.model.gru4rec.layers == (64, 32)
    assert cfg.optim.clip_norm == 1.0 and isinstance(cfg.optim.clip_norm, float)
    assert cfg.mesh.data == -1 and cfg.mesh.model == 1


def test_yaml_file_and_relative_data_path(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data:\n  source: ../events.txt\ntrain:\n  seed: 7\n")
    cfg = load_config(path, ["train.seed=8"])
    assert cfg.data.source == str((tmp_path / "events.txt").resolve())
    assert cfg.train.seed == 8
    # frozen
    with pytest.raises(AttributeError):
        cfg.train.seed = 1


def test_unknown_key_names_line_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n  batch_sise: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert f"{path}:3" in msg and "train.batch_sise" in msg and "train.batch_size" in msg


def test_unknown_override_and_type_errors():
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="'train.epochs' must be int"):
        load_config(None, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match="'train.shuffle' must be bool"):
        load_config(None, ["train.shuffle=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.epochs"])


def test_bad_yaml_and_missing_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_to_dict_round_trips(tmp_path):
    import yaml

    cfg = load_config(None, ["model.gru4rec.layers=[8]", "eval.ks=[5, 10]"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_config(path) == cfg


def test_exponent_floats_and_override_errors_name_the_override():
    cfg = load_config(None, ["optim.learning_rate=1e-3"])
    assert cfg.optim.learning_rate == 1e-3
    with pytest.raises(ConfigError) as e:
        load_config(None, ["optim.learning_rate=abc"])
    assert str(e.value).startswith("--set 'optim.learning_rate' must be float")
