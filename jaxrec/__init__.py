"""jaxrec: a JAX engine that trains, evaluates, benchmarks and exports deep recommenders.

The Python API (`jaxrec.api`): `jaxrec.train(data, config, workdir=...)` and
`jaxrec.open(workdir)` → a `TrainedModel` that evaluates, recommends, embeds and exports;
`jaxrec.load_scorer(path)` reads an exported scorer.
"""

__version__ = "0.1.0"

# `open` is left out of __all__: `from jaxrec import *` must not replace the builtin.
__all__ = ["Embeddings", "TrainedModel", "load_scorer", "train"]

_API = ("train", "open", "TrainedModel", "Embeddings")


def __getattr__(name: str):
    # Lazy, so `import jaxrec` stays light and a service importing the scorer pulls in
    # nothing but jax and numpy.
    if name == "load_scorer":
        from jaxrec.serving.scorer import load_scorer

        return load_scorer
    if name in _API:
        from jaxrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'jaxrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, "load_scorer"})
