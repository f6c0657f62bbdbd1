"""Tiny runs shared by the tests: overrides per model family and a task built from overrides.

(model name, overrides) on the synthetic data; AutoRec also needs explicit ratings
(`conftest.ratings_file`): its entry reads `data.format=movielens-100k` and the test adds
`data.source`.
"""

TINY = [
    "data.synthetic.num_users=120",
    "data.synthetic.num_items=60",
    "data.synthetic.mean_length=8",
    "loss.n_sample=16",
    "train.batch_size=16",
    "train.steps_per_call=4",
    "train.epochs=1",
    "eval.max_history=16",
]
ROWS = ["data.split=temporal_ratio", "eval.protocols=[full]", "optim.name=adam",
        "optim.learning_rate=0.001"]  # fmt: skip
FAMILIES = [
    ("gru4rec", ["model.gru4rec.layers=[16]"]),
    (
        "caser",
        [
            "model.caser.embedding=8",
            "model.caser.horizontal_filters=4",
            "model.caser.vertical_filters=2",
        ],
    ),  # fmt: skip
    (
        "nextitnet",
        [
            "model.nextitnet.embedding=16",
            "model.nextitnet.dilations=[1,2]",
            "model.nextitnet.max_length=12",
        ],
    ),  # fmt: skip
    ("multvae", [*ROWS, "model.vae.layers=[16,8]"]),
    ("multdae", [*ROWS, "model.vae.layers=[16,8]"]),
    ("cdae", [*ROWS, "model.cdae.hidden=8"]),
    (
        "autorec",
        [*ROWS, "model.autorec.hidden=8", "data.format=movielens-100k", "eval.metric=rmse"],
    ),  # fmt: skip
    (
        "cfgan",
        [
            *ROWS,
            "model.cfgan.generator=[16]",
            "model.cfgan.discriminator=[8]",
            "model.cfgan.g_batch_size=8",
            "model.cfgan.d_batch_size=16",
        ],
    ),  # fmt: skip
    ("irgan", [*ROWS, "model.irgan.pretrain_epochs=1", "model.irgan.embedding=8"]),
]


def overrides(model: str, tmp_dir, ratings_file) -> list[str]:
    """Every --set of `model`'s tiny run (writes a ratings file into tmp_dir for AutoRec)."""
    sets = [f"model.name={model}", *TINY, *dict(FAMILIES)[model]]
    if model == "autorec":  # explicit ratings; the synthetic default has none
        sets.append(f"data.source={ratings_file(tmp_dir / 'u.data')}")
    return sets


def task_setup(sets: list[str]):
    """(cfg, split, task, initial state, host batches of one epoch) for `--set`s `sets`.

    The batches have `_epoch`/`_last` removed; never donate the returned state.
    """
    import jax
    from flax import linen as nn

    from jaxrec.config import load_config
    from jaxrec.data.load import load_split
    from jaxrec.tasks import build_task

    cfg = load_config(None, sets)
    _, split = load_split(cfg.data)
    task = build_task(cfg, split)
    state = jax.jit(lambda k: nn.meta.unbox(task.init_state(k)))(jax.random.key(0))
    batches = []
    for b in task.dataset(0, 1):
        b.pop("_epoch"), b.pop("_last")
        batches.append(b)
    return cfg, split, task, state, batches
