"""Serving: a trained model as a self-contained artifact, and what reads it.

`export` writes the artifact (a `jax.export` module; parameters never pickled; metadata
with the vocabularies and sha256 of every file); `scorer` loads and calls it importing only
jax, numpy and the standard library (`jaxrec.load_scorer`); `profiles` writes user and item
embeddings (`jaxrec embed`). This package imports none of them, so that a service importing
the scorer pulls in nothing else.
"""
