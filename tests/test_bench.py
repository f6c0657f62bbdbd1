"""The benchmark harness: records carry what the issue asks, reports render them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.peers import recbole
from jaxrec.bench import cases, costs, isolation, suites
from jaxrec.bench import records as bench_records
from jaxrec.bench.report import plots, side_by_side, table, throughput_bars
from jaxrec.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

TINY = [
    "data.synthetic.num_users=120",
    "data.synthetic.num_items=60",
    "data.synthetic.mean_length=8",
    "model.gru4rec.layers=[16]",
    "loss.n_sample=16",
    "train.batch_size=16",
    "train.steps_per_call=4",
    "train.epochs=50",
    "eval.max_history=16",
]


@pytest.fixture(scope="module")
def records():
    # repeat_seconds far below a call: each repeat runs min_calls, not calls.
    case = {"benchmark": "train", "config": None, "set": TINY, "calls": 3, "repeats": 2,
            "warmup": 1, "repeat_seconds": 1e-9, "min_calls": 2}  # fmt: skip
    return cases.run_case(case)


def test_records_have_every_field_and_metric(records):
    fields = {"system", "benchmark", "model", "dataset", "metric", "value", "unit", "params",
              "context"}  # fmt: skip
    assert all(fields <= set(r) for r in records)
    metrics = {r["metric"] for r in records}
    assert {"compile_time", "train_throughput", "train_steps", "step_time_p50", "step_time_p99",
            "eval_throughput", "scorer_latency_p50", "scorer_latency_p99",
            "peak_memory", "achieved_flops", "achieved_bandwidth"} <= metrics  # fmt: skip
    ctx = records[0]["context"]
    assert ctx["device_count"] == 8 and ctx["jax"] and ctx["config"]["model"]["name"] == "gru4rec"
    by = {r["metric"]: r for r in records}
    lo, hi = by["train_throughput"]["spread"]
    assert 0 < lo <= by["train_throughput"]["value"] <= hi
    epoch = by["epoch_time"]  # the synthetic default's predictions per epoch ÷ throughput
    n = epoch["params"]["examples_per_epoch"]
    assert n > 0 and epoch["value"] == pytest.approx(n / by["train_throughput"]["value"])
    assert by["step_time_p50"]["value"] <= by["step_time_p99"]["value"]
    assert by["train_steps"]["params"]["calls"] == 2  # min_calls
    assert by["eval_throughput"]["params"]["users"] > 0 and by["eval_compile_time"]["value"] >= 0
    # The scorer's FLOPs over the pass, counted by hand per scored row (H = 16, I = 60, the
    # input embedding tied to Wy, so the GRU's input is H wide): one GRU step (the scan body
    # counts once) = x·Wx [16×48] + h·Wh_rz [16×32] + (r·h)·Wh_h [16×16] = 2·16·96 FLOPs,
    # then the [16]·[16, 60] scores = 2·16·60. The elementwise gates and the bias add less
    # than 10 % more. Chunks are padded to the 8 devices.
    users = by["eval_flops"]["params"]["users"]
    assert users == by["eval_throughput"]["params"]["users"]
    assert users < 256  # one chunk (eval.chunk_size)
    dots = (users + (-users % 8)) * 2 * 16 * (96 + 60)
    assert dots <= by["eval_flops"]["value"] <= 1.1 * dots
    assert {r["params"]["requests"] for r in records if r["metric"] == "scorer_latency_p50"} == {
        1,
        64,
    }
    json.dumps(records)  # plain JSON


def test_report_table_and_plots(records, tmp_path):
    text = table(records, ["caser: configs/caser_games.yaml not found"])
    assert "| jaxrec | train | gru4rec |" in text and "Not measured" in text
    scale = [dict(r, benchmark="embedding-scale", params={**r["params"], "update": u, "num_items": n})
             for r in records if r["metric"] == "step_time_p50"
             for u in ("sparse", "dense") for n in (10, 100)]  # fmt: skip
    peer = recbole.to_records("gru4rec", _peer_json(), records[0]["context"])  # a RecBole run
    assert throughput_bars(records + peer) == throughput_bars(records)  # jaxrec's bars only
    assert [r["system"] for r in throughput_bars(records)] == ["jaxrec"]
    pytest.importorskip("matplotlib", reason="plots need the optional 'bench' extra")
    written = plots(records + scale + peer, tmp_path)
    assert {p.name for p in written} == {"train_throughput.png", "scale_step_time.png",
                                         "peer_ratios.png"}  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in written)


def test_machine_limits_and_utilisation_table(records):
    machine = cases.run_case({"benchmark": "machine", "repeats": 1})
    by = {r["metric"]: r for r in machine}
    assert (
        by["machine_matmul_flops"]["unit"] == "FLOP/s" and by["machine_matmul_flops"]["value"] > 1e8
    )
    assert by["machine_memory_bandwidth"]["value"] > 1e8
    step = next(r for r in records if r["metric"] == "achieved_flops")
    text = table(records + machine)
    want = step["value"] / by["machine_matmul_flops"]["value"]
    assert "Machine limits measured in this run" in text and f"{want:.1%}" in text


def test_step_cost_multiplies_the_scanned_calls():
    import jax
    import jax.numpy as jnp

    x = jnp.ones((64, 64))
    one = jax.jit(lambda a: a @ a).lower(x).compile()
    flops, _ = costs.step_cost(one, 1)
    assert flops == pytest.approx(2 * 64**3, rel=0.01)
    assert costs.step_cost(one, 8)[0] == pytest.approx(8 * flops)


def test_loops_inside_a_step_are_flagged_since_their_bodies_count_once():
    import jax
    import jax.numpy as jnp

    x = jnp.ones((64, 64))

    def scanned(n):
        body = lambda c, _: (c @ x, None)  # noqa: E731
        return jax.jit(lambda a: jax.lax.scan(body, a, None, length=n)[0]).lower(x).compile()

    one, ten = costs.step_cost(scanned(1), 1)[0], costs.step_cost(scanned(10), 1)[0]
    assert ten == pytest.approx(one, rel=0.01)  # the body once, whatever the trip count
    plain = jax.jit(lambda a: a @ a).lower(x).compile()
    assert costs.inner_loops(plain, 1) == 0 and costs.inner_loops(scanned(10), 1) == 1
    assert costs.inner_loops(scanned(10), 10) == 0  # the scan over steps_per_call calls
    # A loop without a product (as the random-bit generator's rounds) barely counts.
    elementwise = jax.jit(lambda a: jax.lax.fori_loop(0, 10, lambda i, c: c * 2 + 1, a))
    compiled = elementwise.lower(x).compile()
    assert " while(" in compiled.as_text() and costs.inner_loops(compiled, 1) == 0
    rec = {"system": "jaxrec", "benchmark": "train", "dataset": "d", "unit": "x",
           "params": {"num_items": 10, "inner_loops": 1}, "context": {}}  # fmt: skip
    records = [
        {**rec, "benchmark": "machine", "metric": "machine_matmul_flops", "value": 1e11},
        {**rec, "benchmark": "machine", "metric": "machine_memory_bandwidth", "value": 1e10},
        {**rec, "model": "cfgan", "metric": "achieved_flops", "value": 1e9},
        {**rec, "model": "cfgan", "metric": "achieved_bandwidth", "value": 1e9},
    ]
    from jaxrec.bench.report import _utilisation

    assert "| train | cfgan | 10 |  | ≥ 1.00 | ≥ 1.0% | ≥ 1.00 | ≥ 10.0% |" in _utilisation(records)


SERVING = [
    "model.name=gru4rec",
    "data.synthetic.num_users=120",
    "data.synthetic.num_items=64",
    "data.synthetic.mean_length=8",
    "model.gru4rec.layers=[16]",
    "loss.n_sample=16",
    "train.batch_size=16",
    "eval.max_history=16",
]


def test_scorer_case_times_four_paths_and_numpy_agrees():
    import jax
    import numpy as np

    from jaxrec import trainer
    from jaxrec.bench.serving import _numpy_top_k
    from jaxrec.config import load_config
    from jaxrec.serving.export import _recommend_fn

    case = {"benchmark": "scorer", "config": None, "set": SERVING, "calls": 2, "repeats": 1}
    records = cases.run_case(case)
    lat = {(r["params"]["path"], r["params"]["requests"]) for r in records
           if r["metric"] == "scorer_latency_p50"}  # fmt: skip
    assert lat == {(p, b) for p in ("exported", "jitted", "recommend()", "numpy")
                   for b in (1, 32, 256)}  # fmt: skip
    assert "Scorer latency" in table(records)
    # The numpy brute force returns the model's own top-k.
    run = trainer.prepare(load_config(None, SERVING))
    params = jax.device_get(run.state.params)
    hist, _ = run.split.stage("test")
    users = np.arange(8, dtype=np.int32)
    ids, mask = hist.padded(users, 16)
    want, _ = jax.jit(_recommend_fn(run.task.score, 10))(params, users, ids, mask, ids, mask)
    h = np.asarray(jax.jit(run.task.represent)(params, users, ids, mask))
    got = _numpy_top_k(h, np.asarray(params["Wy"]), np.asarray(params["By"]).reshape(-1), ids,
                       mask, 10)  # fmt: skip
    np.testing.assert_array_equal(got, np.asarray(want))


@pytest.mark.slow  # four meshes compiled: ~40 s on 2 cores
def test_shard_case_splits_tables_evenly():
    case = {"benchmark": "embedding-shards", "config": None, "set": SERVING, "calls": 1,
            "repeats": 1}  # fmt: skip
    records = cases.run_case(case)
    tables = {r["params"]["shards"]: r for r in records if r["metric"] == "table_bytes_per_device"}
    assert sorted(tables) == [1, 2, 4, 8]
    for n, r in tables.items():
        assert r["value"] == r["params"]["ideal"] == r["params"]["total"] / n
    assert "ideal total ÷ n" in table(records)


def test_percentile_is_nearest_rank():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert bench_records.percentile(values, 50) == 3.0
    assert bench_records.percentile(values, 99) == 5.0
    assert bench_records.percentile(values, 0) == 1.0


def _peer_json():
    """What benchmarks/peers/recbole_autoencoder.py writes, trimmed to the fields read."""
    return {"model": "RecBole MultiVAE", "data": "/d/ml-1m-diffrec-clean",
            "args": {"batch_size": None, "epochs": 3}, "versions": {"recbole": "1.2.1"},
            "torch_num_threads": 2, "users_per_s": [1000.0, 3000.0, 2000.0],
            "valid_users_per_s": [300.0, 100.0, 200.0], "epoch_train_s": [1.0, 1.0, 1.0],
            "peak_rss_mib": 512.0, "test": {"recall@20": 0.1, "ndcg@20": 0.05}}  # fmt: skip


def test_peer_records_and_side_by_side_ratios():
    peer = recbole.to_records("multvae", _peer_json(), bench_records.context())
    by = {r["metric"]: r for r in peer}
    assert by["train_throughput"]["value"] == 2000.0  # median of the epochs
    assert by["train_throughput"]["spread"] == [1000.0, 3000.0]
    assert by["eval_throughput"]["value"] == 200.0
    assert by["epoch_time"]["value"] == 1.0 and not by["epoch_time"]["params"]["extrapolated"]
    assert by["peak_memory"]["value"] == 512.0  # MiB, as jaxrec records it
    assert by["test_ndcg@20"]["value"] == 0.05 and all(r["system"] == "recbole" for r in peer)
    ours = [{**by["epoch_time"], "system": "jaxrec", "value": 0.25},
            {**by["eval_throughput"], "system": "jaxrec", "value": 5000.0}]  # fmt: skip
    lines = side_by_side(ours + peer)
    row = next(x for x in lines if x.startswith("| multvae"))
    assert "| 0.2 | 1.0 | 4.0× |  | 5,000 | 200 | 25.0× |  |" in row  # no machine: no ceiling
    assert "4.0×" in table(ours + peer)  # the report carries the side-by-side table
    # Ceilings: a 1e11 FLOP/s machine; the step at 5e10 FLOP/s: 4× now, 8× at the peak. The
    # scorer does 1e9 FLOPs over 1,000 users: 1e-5 s a user at the peak, against the peer's
    # 1/200 s: 500×.
    machine = {**ours[0], "benchmark": "machine", "metric": "machine_matmul_flops", "value": 1e11}
    ours += [{**ours[0], "metric": "achieved_flops", "value": 5e10},
             {**ours[0], "metric": "eval_flops", "value": 1e9, "params": {"users": 1000}}]  # fmt: skip
    row = next(x for x in side_by_side([machine, *ours, *peer]) if x.startswith("| multvae"))
    assert "| 0.2 | 1.0 | 4.0× | 8.0× | 5,000 | 200 | 25.0× | 500.0× |" in row


def test_sequential_peer_epoch_time_is_extrapolated_from_its_first_batches():
    run = {**_peer_json(), "model": "RecBole Caser", "data": "/d/Video.txt",
           "settings": {"train_batch_size": 512}, "examples_per_s": [500.0],
           "train_examples_per_epoch": 200_000, "trained_examples_per_epoch": [10_240]}  # fmt: skip
    del run["users_per_s"]
    by = {r["metric"]: r for r in recbole.to_records("caser", run, bench_records.context())}
    assert by["epoch_time"]["value"] == 400.0 and by["epoch_time"]["params"]["extrapolated"]
    assert by["train_throughput"]["params"]["batch_size"] == 512
    assert by["train_throughput"]["dataset"] == "/d/Video.txt"  # jaxrec's key for Games


def test_peer_scripts_are_found_in_the_checkout_even_with_copied_configs(tmp_path):
    root = suites._peers_root(tmp_path / "configs")  # a configs copy outside the repo
    assert (root / "benchmarks" / "peers" / "recbole_sequential.py").is_file()


def test_sequential_peer_follows_the_configs_sizes(tmp_path):
    from jaxrec.config import load_config

    cfg = load_config(REPO / "configs" / "caser_games.yaml", ["model.caser.embedding=50"])
    sizes = recbole.peer_sizes("caser", cfg)
    assert sizes == {"embedding_size": 50, "MAX_ITEM_LIST_LENGTH": 5, "train_batch_size": 512}
    cmd = recbole._command("caser", Path("py"), REPO, None, 1, tmp_path / "o.json", tmp_path, sizes)
    assert "--set=embedding_size=50" in cmd and "--set=train_batch_size=512" in cmd
    assert recbole.peer_sizes("multvae", cfg) == {}


def test_peer_without_its_venv_is_reported_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBOLE_VENV", str(tmp_path / "none"))
    records, skipped = recbole.recbole_records(["multvae"], tmp_path, None, 1, {})
    assert records == [] and "recbole_setup.sh" in skipped[0]


@pytest.mark.parametrize("model", ["gru4rec", "caser", "nextitnet", "multvae"])
def test_examples_per_epoch_is_what_an_epoch_counts(model, tmp_path):
    """The bench's epoch time (examples_per_epoch ÷ throughput) rests on this count."""
    import jax

    from tests.tiny import overrides, task_setup

    _, _, task, state, batches = task_setup(overrides(model, tmp_path, None))
    step, key, counted = jax.jit(task.train_step), jax.random.key(0), 0
    for b in batches:
        state, m = step(state, b, key)
        counted += int(m["examples"])
    assert task.examples_per_epoch == counted > 0


def test_several_batch_shapes_are_compiled_outside_the_clock():
    """NextItNet's length buckets give batches of several widths: each shape is compiled
    before the timed calls, reported apart, and the timed calls cover them all."""
    sets = [*TINY, "model.name=nextitnet", "model.nextitnet.embedding=8",
            "model.nextitnet.dilations=[1]", "model.nextitnet.max_length=12",
            "model.nextitnet.length_buckets=[2,4,7]", "data.synthetic.mean_length=5"]  # fmt: skip
    case = {"benchmark": "train", "config": None, "set": sets, "calls": 6, "repeats": 2,
            "warmup": 2}  # fmt: skip
    records = {r["metric"]: r for r in cases.run_case(case)}
    other = records["compile_time_other_shapes"]
    assert other["value"] > 0 and other["params"]["shapes"] >= 1
    # No compile inside the clock: the slowest timed step (p99 of 12 = the max) is faster
    # than a compile (the other shapes' mean one, or the first).
    compile_ms = 1e3 * min(other["value"] / other["params"]["shapes"],
                           records["compile_time"]["value"])  # fmt: skip
    assert records["step_time_p99"]["value"] < compile_ms
    assert records["train_throughput"]["value"] > 0
    assert records["achieved_flops"]["value"] > 0


def test_family_scale_cases_put_each_config_on_synthetic_data():
    """Every family's own config, its data swapped for the synthetic set at the case's size."""
    from jaxrec.config import load_config
    from jaxrec.data.load import load_split

    cases = suites._family_scale(3_000, 2_000)
    assert {m for _, m, _, _ in cases} == {"caser", "nextitnet", "multvae", "cdae", "cfgan",
                                           "irgan"}  # fmt: skip
    for benchmark, model, config, sets in cases:
        assert benchmark == "synthetic-scale"  # training only: no evaluation or scorer
        cfg = load_config(REPO / "configs" / config, [*sets, "data.synthetic.num_users=300"])
        assert cfg.model.name == model and cfg.data.source == "synthetic"
        _, split = load_split(cfg.data)
        assert split.num_items == (3_000 if model in ("caser", "nextitnet") else 2_000)
        assert split.train.lengths.sum() > 0 and split.test_target.lengths.sum() > 0


def test_suite_forks_each_case_from_one_import_and_reports_failures(tmp_path):
    """The suite's own process (no JAX backend) forks a child per case: the child's JAX
    settings apply (8 CPU devices for the shard case), a failing case is reported, not fatal."""
    script = f"""
import sys
from pathlib import Path
from jaxrec.bench import isolation, suites as bench
assert isolation.can_fork()
tiny = {TINY!r}
bench.SUITES["t"] = {{"calls": 2, "repeats": 1, "warmup": 1, "shards": (1, 8), "cases": [
    ("embedding-scale", "gru4rec", None, [*tiny, "optim.sparse=true"]),
    ("embedding-scale", "gru4rec", None, [*tiny, "optim.no_such_knob=1"]),
    ("embedding-shards", "gru4rec", None, [*tiny, "data.synthetic.num_items=64",
                                           "optim.sparse=true"])]}}
bench.run_suite("t", Path(sys.argv[1]), Path("{REPO / "configs"}"))
assert isolation.can_fork()  # the cases ran in children: still no backend here
"""
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done in" in proc.stdout and "failed" in proc.stdout
    records = json.loads((tmp_path / "results.json").read_text())
    scale = [r for r in records if r["benchmark"] == "embedding-scale"]
    assert scale and scale[0]["context"]["device_count"] == 1  # the suite's own setting
    shards = {r["params"]["shards"]: r for r in records if r["metric"] == "table_bytes_per_device"}
    assert set(shards) == {1, 8} and shards[8]["params"]["devices"] == 8
    assert shards[1]["value"] == 8 * shards[8]["value"]
    text = (tmp_path / "results.md").read_text()
    assert "Not measured" in text and "no_such_knob" in text


def test_a_process_with_a_backend_starts_a_fresh_one_per_case():
    """Where JAX already runs (this test process), forking would copy its threads: the case
    runs in `python -m jaxrec.bench --case` instead, with the same records and phases."""
    import jax

    jax.devices()  # this process's backend is up
    assert not isolation.can_fork()
    got, phases, error = isolation.run_isolated({"benchmark": "machine", "repeats": 1}, {})
    assert error == "" and phases == {}
    assert {r["metric"] for r in got} == {"machine_matmul_flops", "machine_memory_bandwidth"}
    got, _, error = isolation.run_isolated({"benchmark": "nonsense", "config": None, "set": []}, {})
    assert got == [] and error  # the failure's last lines, not an exception here


def test_each_peer_runs_right_after_its_models_case(tmp_path, monkeypatch):
    """`--peers recbole`: a train case is followed at once by its peer run (a ratio of two
    runs minutes apart), with the case's machine context; a missing venv is said once."""
    import types

    order = []

    def case(case, env):
        model = next(s.split("=")[1] for s in case["set"] if s.startswith("model.name="))
        order.append(("jaxrec", model))
        ctx = {**bench_records.context(), "device_kind": "fake"}
        rec = {"system": "jaxrec", "benchmark": "train", "model": model, "dataset": "d",
               "metric": "epoch_time", "value": 1.0, "unit": "s", "params": {}, "context": ctx}  # fmt: skip
        return [rec], {}, ""

    def peer(models, root, data_dir, epochs, context, sizes):
        order.append(("recbole", *models))
        if models == ["gru4rec"]:
            return [], ["recbole: no venv"]
        assert context["device_kind"] == "fake" and context["config"] is None
        return [{"system": "recbole", "benchmark": "train", "model": models[0], "dataset": "d",
                 "metric": "epoch_time", "value": 4.0, "unit": "s", "params": {},
                 "context": context}], ["recbole: no venv"]  # fmt: skip

    monkeypatch.setattr(suites, "_run_isolated", case)
    runner = types.SimpleNamespace(recbole_records=peer, peer_sizes=recbole.peer_sizes)
    monkeypatch.setattr(suites, "_peer_runner", lambda root: runner)
    cases = [("train", m, None, [f"model.name={m}", *TINY[:3]]) for m in ("gru4rec", "caser")]
    monkeypatch.setitem(suites.SUITES, "t", {"calls": 1, "repeats": 1, "cases": cases})
    got = suites.run_suite("t", tmp_path, REPO / "configs", peers=["recbole"])
    assert order == [("jaxrec", "gru4rec"), ("recbole", "gru4rec"), ("jaxrec", "caser"),
                     ("recbole", "caser")]  # fmt: skip
    assert [r["system"] for r in got] == ["jaxrec", "jaxrec", "recbole"]
    text = (tmp_path / "results.md").read_text()
    assert text.count("recbole: no venv") == 1 and "| caser | recbole | 1.0 | 4.0 | 4.0× |" in text


def _no_case(*args):
    raise AssertionError("a case ran: the run should have been refused first")


def test_non_empty_out_is_refused_without_force(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(suites, "_run_isolated", _no_case)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("[]")
    argv = ["--suite", "quick", "--out", str(out), "--configs", str(REPO / "configs")]
    assert suites.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"jaxrec bench: error: --out {out} is not empty; choose another --out or "
                   "pass --force to write into it (its results.json, results.md and plots are "
                   "replaced)\n")  # fmt: skip
    assert (out / "results.json").read_text() == "[]"  # untouched
    (out / "results.json").unlink()  # a file for --out: refused even with --force
    (out / "file").write_text("x")
    assert suites.main([*argv[:2], "--out", str(out / "file"), "--force"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_force_writes_into_a_non_empty_out(tmp_path, monkeypatch):
    monkeypatch.setattr(suites, "_run_isolated", lambda case, env: ([], {}, "not run"))
    monkeypatch.setitem(suites.SUITES, "t", {"calls": 1, "repeats": 1, "cases": suites._MACHINE})
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("old")
    assert suites.main(["--suite", "t", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "results.json").read_text()) == []


def test_missing_configs_are_named_and_refused(tmp_path, monkeypatch, capsys):
    """Outside a checkout ./configs is not there: refused, not every train case skipped."""
    monkeypatch.setattr(suites, "_run_isolated", _no_case)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert suites.main(["--suite", "quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    start = "jaxrec bench: error: --configs configs: no such directory; suite 'quick' reads "
    assert err.startswith(start + "caser_games.yaml, cdae_ml1m.yaml") and err.count("\n") == 1
    assert "pass --configs" in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was written
    # A configs folder lacking some files: those are named; --only picks what it needs.
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "gru4rec_games.yaml").write_text(
        (REPO / "configs" / "gru4rec_games.yaml").read_text()
    )
    assert suites.main(["--only", "train", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ": missing; suite 'quick' reads caser_games.yaml" in err and "gru4rec_games" not in err
    with pytest.raises(ConfigError, match="multvae_ml1m.yaml"):
        suites._check_configs("quick", configs, ["multvae"])
    suites._check_configs("quick", configs, ["gru4rec"])  # all it reads is there
    suites._check_configs("scorer", tmp_path / "none", None)  # reads no config file


def test_help_sentences_are_whole(capsys):
    with pytest.raises(SystemExit) as e:
        suites.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    whole = "scorer latency, measured the same way every time, as JSON records."
    assert whole in text and "--force" in text


def test_peer_runner_is_loaded_by_path_and_its_absence_is_said(tmp_path, monkeypatch):
    """The RecBole runner lives in the checkout (benchmarks/peers/), not in the wheel."""
    runner = suites._peer_runner(REPO)
    assert callable(runner.to_records) and callable(runner.recbole_records)
    assert suites._peer_runner(tmp_path) is None
    monkeypatch.setattr(suites, "_peers_root", lambda configs_dir: tmp_path)
    got, why = suites._recbole("multvae", None, [], tmp_path, None, {}, [{"context": {}}])
    assert got == [] and "no peer runner at" in why[0] and "jaxrec checkout" in why[0]
