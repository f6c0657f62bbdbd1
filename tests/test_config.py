import re
from pathlib import Path

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


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=-1", "train.epochs=-1: must be >= 0"),
        ("train.batch_size=0", "train.batch_size=0: must be >= 1"),
        ("model.gru4rec.dropout_hidden=1.5", "model.gru4rec.dropout_hidden=1.5: must be in [0, 1)"),
        ("optim.learning_rate=-5", "optim.learning_rate=-5: must be > 0"),
        ("optim.learning_rate=.nan", "optim.learning_rate=nan: must be > 0"),
        ("data.fold_in=1", "data.fold_in=1: must be in (0, 1)"),
        ("model.cfgan.zr_ratio=1.01", "model.cfgan.zr_ratio=1.01: must be in [0, 1]"),
        ("mesh.data=0", "mesh.data=0: must be -1 or >= 1"),
        ("train.seed=-3", "train.seed=-3: must be >= 0"),
        ("train.seed=9223372036854775808", "must be >= 0 and below 2**63"),
    ],
)
def test_out_of_range_override_names_key_value_and_range(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert str(e.value).startswith("--set ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_tuples_are_checked_element_by_element():
    with pytest.raises(ConfigError, match=r"model\.gru4rec\.layers\[1\]=0: must be >= 1"):
        load_config(None, ["model.gru4rec.layers=[64, 0]"])
    with pytest.raises(ConfigError, match=r"eval\.ks\[0\]=0: must be >= 1"):
        load_config(None, ["eval.ks=[0, 10]"])
    with pytest.raises(ConfigError, match=r"model\.nextitnet\.dilations=0: must be >= 1"):
        load_config(None, ["model.nextitnet.dilations=0"])  # one element, no brackets


def test_range_edges_and_optional_values_are_accepted():
    cfg = load_config(
        None,
        [
            "train.epochs=0",
            "train.patience=0",
            "mesh.data=-1",
            "model.gru4rec.dropout_hidden=0",
            "model.cfgan.zr_ratio=1",
            "optim.clip_norm=null",
            "optim.learning_rate=.inf",  # the non-finite guard's tests diverge on purpose
            "loss.n_sample=0",
        ],
    )
    assert cfg.train.epochs == 0 and cfg.optim.clip_norm is None
    with pytest.raises(ConfigError, match="must be in"):
        load_config(None, ["model.gru4rec.dropout_hidden=1"])


def test_out_of_range_value_in_a_file_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n\nmodel:\n  gru4rec:\n    dropout_embed: -0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}:6: model.gru4rec.dropout_embed=-0.1: must be in [0, 1)"
    # An override of the same key is named as the override, not the file's line.
    with pytest.raises(ConfigError) as e:
        load_config(path, ["model.gru4rec.dropout_embed=2"])
    assert str(e.value) == "--set model.gru4rec.dropout_embed=2: must be in [0, 1)"


def test_every_default_and_shipped_config_lies_within_its_ranges(tmp_path):
    import yaml

    repo = Path(__file__).resolve().parent.parent
    paths = sorted((repo / "configs").glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        load_config(path)
    path = tmp_path / "defaults.yaml"  # every field given: every default checked
    path.write_text(yaml.safe_dump(to_dict(Config())))
    assert load_config(path) == Config()


def test_every_numeric_field_has_a_range():
    import dataclasses
    import typing

    def walk(cls):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                yield from walk(tp)
            elif {int, float} & {tp, *typing.get_args(tp)} and f.name != "min_rating":
                yield cls.__name__, f.name, f.metadata.get("range")

    missing = [(c, n) for c, n, r in walk(Config) if r is None]
    assert missing == []  # data.min_rating: any rating scale


def test_out_of_range_through_the_cli_is_one_line(tmp_path, capsys):
    from jaxrec.cli import main

    assert main(["train", "--workdir", str(tmp_path / "w"), "--set", "train.batch_size=0"]) == 2
    err = capsys.readouterr().err
    assert err == "jaxrec: error: --set train.batch_size=0: must be >= 1\n"
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_lists_that_need_a_value_refuse_an_empty_one():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["model.gru4rec.layers=[]"])
    assert str(e.value) == "--set model.gru4rec.layers=[]: needs at least one value, e.g. [100]"
    with pytest.raises(ConfigError, match=r"eval\.ks=\[\]: needs at least one value"):
        load_config(None, ["eval.ks=[]"])
    cfg = load_config(None, ["model.nextitnet.length_buckets=[]"])  # () = no buckets
    assert cfg.model.nextitnet.length_buckets == ()


@pytest.mark.parametrize(
    "key,value",
    [
        ("model.name", "gru4recc"),
        ("model.caser.loss", "ce"),
        ("model.caser.windows", "all"),
        ("model.caser.conv_activation", "gelu"),
        ("model.caser.fc_activation", "gelu"),
        ("model.nextitnet.head", "gelu"),
        ("model.cdae.hidden_activation", "gelu"),
        ("model.cdae.output_activation", "gelu"),
        ("model.cdae.loss", "hinge"),
        ("model.cfgan.mode", "both"),
        ("loss.kind", "bpr"),
        ("optim.name", "lamb"),
        ("optim.schedule", "step"),
        ("train.nonfinite", "ignore"),
        ("eval.select_on", "train"),
        ("eval.recall_denominator", "max"),
        ("eval.protocols", "[full, popular]"),
        ("eval.baselines", "[ease, itemknn]"),
        ("data.split", "random"),
        ("data.test_input", "valid"),
    ],
)
def test_a_choice_outside_its_literal_names_the_key_and_the_choices(key, value):
    with pytest.raises(ConfigError, match=rf"^--set {re.escape(key)}=.*use one of"):
        load_config(None, [f"{key}={value}"])


def test_a_choice_in_a_file_names_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: caser\n  caser:\n    loss: ce\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:4: model\.caser\.loss='ce'"):
        load_config(path)


@pytest.mark.parametrize(
    "sets,key",
    [
        (["model.gru4rec.embedding=8"], "model.gru4rec.constrained_embedding"),
        (["model.name=caser", "model.caser.loss=sampled-softmax", "loss.n_sample=0"],
         "loss.n_sample"),
        (["model.name=nextitnet", "loss.kind=top1-max"], "loss.kind"),
        (["model.name=nextitnet", "loss.kind=bpr-max", "loss.n_sample=0"], "loss.kind"),
        (["model.name=cdae", "model.cdae.output_activation=relu"], "model.cdae.output_activation"),
        (["model.name=cfgan", "train.batch_size=60"], "model.cfgan.g_batch_size"),
        (["model.name=cfgan", "model.cfgan.shared_zr_pm=true", "model.cfgan.pm_ratio=0.5"],
         "model.cfgan.shared_zr_pm"),
    ],
)  # fmt: skip
def test_combinations_no_model_trains_with_name_the_key(sets, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(None, sets)
