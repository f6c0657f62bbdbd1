"""jaxrec: a JAX engine that trains, evaluates, benchmarks and exports deep recommenders."""

__version__ = "0.1.0"
