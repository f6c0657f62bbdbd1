"""jaxrec: a JAX engine that trains, evaluates, benchmarks and exports deep recommenders."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import jaxrec` stays light and a service importing the scorer pulls in
    # nothing but jax and numpy.
    if name == "load_scorer":
        from jaxrec.serving.scorer import load_scorer

        return load_scorer
    raise AttributeError(f"module 'jaxrec' has no attribute {name!r}")
