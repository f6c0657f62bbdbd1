"""I-AutoRec: RMSE against a numpy forward pass, training lowers it, end-to-end CLI."""

import json

import jax
import numpy as np
import pytest
from flax import linen as nn

from jaxrec.cli import main
from jaxrec.config import load_config
from jaxrec.data.interactions import Interactions
from jaxrec.errors import ConfigError
from jaxrec.tasks import autorec


def _np_rmse(params, ratings, stage):
    """Reference: dense numpy I-AutoRec forward pass, clipping and the default rating."""
    inputs = [np.concatenate(x) for x in zip(ratings.train, ratings.valid, strict=True)]
    inputs = ratings.train if stage == "valid" else inputs
    R = np.zeros((ratings.num_items, ratings.num_users))
    R[inputs[1], inputs[0]] = inputs[2]
    V, mu = np.asarray(params["encoder"]["kernel"]), np.asarray(params["encoder"]["bias"])
    W, b = np.asarray(params["decoder"]["kernel"]), np.asarray(params["decoder"]["bias"])
    out = (1 / (1 + np.exp(-(R @ V + mu)))) @ W + b
    users, items, truth = ratings.valid if stage == "valid" else ratings.test
    lo, hi = ratings.train[2].min(), ratings.train[2].max()
    pred = np.clip(out[items, users], lo, hi)
    unseen = (np.bincount(inputs[1], minlength=ratings.num_items)[items] == 0) | (
        np.bincount(ratings.train[0], minlength=ratings.num_users)[users] == 0
    )
    pred[unseen] = (lo + hi) / 2
    return np.sqrt(np.mean((pred - truth) ** 2))


def test_rmse_matches_numpy_and_training_lowers_it(tmp_path, ratings_file):
    src = ratings_file(tmp_path / "u.data")
    cfg = load_config(
        None,
        [
            f"data.source={src}",
            "data.format=movielens-100k",
            "data.valid_ratio=0.1",
            "data.test_ratio=0.2",
            "model.name=autorec",
            "model.autorec.hidden=16",
            "model.autorec.l2=0.1",
            "optim.name=adam",
            "optim.learning_rate=0.02",
            "train.batch_size=8",
            "train.epochs=40",
        ],
    )
    task = autorec.build(cfg, None)
    ratings = task.evaluate.keywords["ratings"]
    n = sum(len(p[0]) for p in (ratings.train, ratings.valid, ratings.test))
    assert len(ratings.test[0]) == round(0.2 * n) and len(ratings.valid[0]) == round(0.1 * n)
    state = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)))(jax.random.key(0))
    before = {s: task.evaluate(state.params, s) for s in ("valid", "test")}
    for s in ("valid", "test"):
        np.testing.assert_allclose(before[s]["rmse"], _np_rmse(state.params, ratings, s), rtol=1e-4)
    step = jax.jit(task.train_step)
    batches = list(task.dataset(0, 1))
    for b in batches:
        b.pop("_epoch"), b.pop("_last")
        state, _ = step(state, b, jax.random.key(0))
    after = task.evaluate(state.params, "test")
    np.testing.assert_allclose(after["rmse"], _np_rmse(state.params, ratings, "test"), rtol=1e-4)
    assert after["rmse"] < 0.85 * before["test"]["rmse"]
    # The ranking scorer is the same reconstruction, read per user.
    scores = np.asarray(jax.jit(task.score)(state.params, np.array([0, 3]), None, None))
    assert scores.shape == (2, ratings.num_items) and np.isfinite(scores).all()


def test_padding_rows_do_not_change_the_update(tmp_path, ratings_file):
    src = ratings_file(tmp_path / "u.data")
    sets = [f"data.source={src}", "model.name=autorec", "model.autorec.hidden=8"]
    cfg = load_config(None, [*sets, "optim.name=adam", "train.batch_size=8"])
    task = autorec.build(cfg, None)
    state = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)))(jax.random.key(0))
    b = next(iter(task.dataset(0, 1)))
    b.pop("_epoch"), b.pop("_last")
    junk = {k: v.copy() for k, v in b.items()}
    junk["valid"][4:] = False
    junk["values"][4:] = 5.0
    half = {k: v.copy() for k, v in b.items()}
    half["valid"][4:], half["mask"][4:] = False, False
    step = jax.jit(task.train_step)
    a, _ = step(state, junk, jax.random.key(0))
    c, _ = step(state, half, jax.random.key(0))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_cli_train_reports_rmse(tmp_path, capsys, ratings_file):
    src = ratings_file(tmp_path / "u.data")
    sets = [
        f"data.source={src}",
        "data.format=movielens-100k",
        "model.name=autorec",
        "model.autorec.hidden=8",
        "optim.name=adam",
        "train.batch_size=8",
        "train.epochs=2",
        "eval.metric=rmse",
        "eval.baselines=[]",
    ]
    wd = tmp_path / "w"
    assert main(["train", "--workdir", str(wd), *[x for s in sets for x in ("--set", s)]]) == 0
    out = capsys.readouterr().out
    assert "valid rating" in out and "rmse" in out and "test (rating" in out
    (result,) = json.loads((wd / "results.json").read_text())["results"]
    assert result["system"] == "autorec" and 0 < result["rmse"] < 4


def test_ratings_are_required():
    data = Interactions.from_raw(np.array([1, 2]), np.array([1, 1]), np.array([0, 1]))
    with pytest.raises(ConfigError, match="explicit ratings"):
        autorec.random_rating_split(data, 0.1, 0.1, 0)
