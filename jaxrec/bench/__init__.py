"""`jaxrec bench`: training throughput, step latency, compile time, evaluation throughput,
memory and scorer latency, measured the same way every time, as JSON records.

    jaxrec bench --suite quick --out bench/            # or: python -m benchmarks --suite quick

A train case times the program that trains: the state and the compiled step are built as
`jaxrec train` builds them (`trainer.prepare`, `step.compile_train_step`), the host batches
prepared before the clock starts; compile time is reported apart (`cases`). Every case
runs in a process of its own (`suites`, `isolation`). A `machine` case measures the peak
matmul rate and memory bandwidth in the same run, and each train case's XLA cost analysis
turns its step time into fractions of them (`costs`). Scorer latency and per-device table memory are
`serving`'s cases. Peers (`--peers recbole`) run from the checkout's `benchmarks/peers/`.

Records (`DIR/results.json`, `records`): {system, benchmark, model, dataset, metric, value,
unit, params, context}; `DIR/results.md` is the table, `DIR/*.png` the plots (`report`,
with matplotlib).
"""

from jaxrec.bench.suites import SUITES, SYNTHETIC_DATA, main, run_suite

__all__ = ["SUITES", "SYNTHETIC_DATA", "main", "run_suite"]
