"""jaxrec's benchmarks: `python -m benchmarks --suite quick --out DIR` (see jaxrec.bench)."""
