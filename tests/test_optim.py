import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrec.config import OptimConfig
from jaxrec.errors import ConfigError
from jaxrec.optim import make_optimizer, schedule


def test_schedules():
    lr = schedule(OptimConfig(learning_rate=1.0, schedule="cosine", warmup_steps=10), 110)
    np.testing.assert_allclose(
        [lr(0), lr(5), lr(10), lr(60), lr(110)], [0, 0.5, 1, 0.5, 0], atol=1e-6
    )
    lr = schedule(OptimConfig(learning_rate=0.2, schedule="linear"), 100)
    np.testing.assert_allclose([lr(0), lr(50), lr(100)], [0.2, 0.1, 0.0], atol=1e-7)
    with pytest.raises(ConfigError, match="optim.schedule"):
        schedule(OptimConfig(schedule="step"), 10)


@pytest.mark.parametrize("name", ["adagrad", "adam", "adamw", "sgd"])
def test_every_optimizer_descends(name):
    tx = make_optimizer(OptimConfig(name=name, learning_rate=0.3, clip_norm=10.0), 100)
    params = {"w": jnp.array([3.0, -2.0])}
    state = tx.init(params)
    for _ in range(50):
        grads = {"w": 2 * params["w"]}
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert float(jnp.sum(params["w"] ** 2)) < 13.0 * 0.5


def test_adagrad_momentum_is_heavy_ball():
    tx = make_optimizer(OptimConfig(name="adagrad", learning_rate=0.1, momentum=0.5), 10)
    p = {"w": jnp.array([1.0])}
    s = tx.init(p)
    u1, s = tx.update({"w": jnp.array([2.0])}, s, p)
    u2, s = tx.update({"w": jnp.array([2.0])}, s, p)
    g1 = 2 / np.sqrt(4 + 1e-6)
    g2 = 2 / np.sqrt(8 + 1e-6)
    np.testing.assert_allclose(u1["w"], [-0.1 * g1], rtol=1e-6)
    np.testing.assert_allclose(u2["w"], [-0.1 * (g2 + 0.5 * g1)], rtol=1e-6)


def test_unknown_optimizer():
    with pytest.raises(ConfigError, match="optim.name"):
        make_optimizer(OptimConfig(name="lion"), 10)
