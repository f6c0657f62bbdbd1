"""End to end through the `jaxrec` console script on tiny synthetic data."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxrec.cli import main

TINY = [
    "data.synthetic.num_users=120",
    "data.synthetic.num_items=60",
    "data.synthetic.mean_length=8",
    "model.gru4rec.layers=[16]",
    "loss.n_sample=16",
    "train.batch_size=16",
    "train.steps_per_call=4",
    "eval.chunk_size=64",
]


def _sets(extra=()):
    out = []
    for s in [*TINY, *extra]:
        out += ["--set", s]
    return out


def test_select_on_test_reports_the_picked_and_the_last_epoch(tmp_path, capsys):
    """eval.select_on=test (CFGAN's and IRGAN's own protocol): the test set is evaluated
    every epoch, the best epoch's parameters are reported, labelled, beside the last's."""
    wd = tmp_path / "run"
    sets = ["train.epochs=3", "eval.select_on=test", "eval.protocols=[full]", "train.patience=0"]
    assert main(["train", "--workdir", str(wd), *_sets(sets)]) == 0
    assert "picked on the TEST set" in capsys.readouterr().out
    lines = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]
    assert not any(r["kind"] == "valid" for r in lines)
    during = [r["ndcg@10"] for r in lines if r["kind"] == "test" and "system" not in r]
    assert len(during) == 3
    rows = {r["system"]: r for r in json.loads((wd / "results.json").read_text())["results"]}
    best = int(np.argmax(during)) + 1
    picked = rows[f"gru4rec (epoch {best}, picked on test)"]
    np.testing.assert_allclose(picked["ndcg@10"], max(during), rtol=1e-6)
    np.testing.assert_allclose(rows["gru4rec (last epoch)"]["ndcg@10"], during[-1], rtol=1e-6)

    assert main(["train", "--workdir", str(tmp_path / "bad"), *_sets(["eval.select_on=tset"])])
    assert "eval.select_on='tset'" in capsys.readouterr().err


def test_train_evaluate_recommend_end_to_end(tmp_path, capsys):
    wd = tmp_path / "run"
    assert main(["train", "--workdir", str(wd), *_sets(["train.epochs=2"])]) == 0
    out = capsys.readouterr().out
    assert "full ranking" in out and "sampled-100" in out
    assert "popularity" in out and "markov" in out
    results = json.loads((wd / "results.json").read_text())
    systems = {(r["system"], r["protocol"]) for r in results["results"]}
    assert ("gru4rec", "full") in systems and ("popularity", "sampled-100") in systems
    lines = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["kind"] == "epoch"] == [1, 2]
    assert any(r["kind"] == "valid" for r in lines)
    assert (wd / "tensorboard").is_dir()

    assert main(["evaluate", "--workdir", str(wd), "--split", "valid"]) == 0
    assert "valid full-ranking" in capsys.readouterr().out

    out_csv = tmp_path / "recs.csv"
    assert main(["recommend", "--workdir", str(wd), "--k", "5", "--out", str(out_csv)]) == 0
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["user", "item", "rank", "score"]
    rows = rows[1:]
    vocab = np.load(wd / "vocab.npz", allow_pickle=False)
    assert {r[0] for r in rows} <= set(vocab["users"]) and {r[1] for r in rows} <= set(
        vocab["items"]
    )
    by_user = {}
    for u, i, rank, score in rows:
        by_user.setdefault(u, []).append((int(rank), i, float(score)))
    assert len(by_user) == 120
    # the default lists serve from the whole history and exclude all of it
    from jaxrec.config import load_config
    from jaxrec.data import splits
    from jaxrec.data.load import load_split

    data, split = load_split(load_config(wd / "config.yaml").data)
    user_index = {u: k for k, u in enumerate(data.user_vocab)}
    for u, recs in by_user.items():
        assert [r for r, _, _ in recs] == [1, 2, 3, 4, 5]
        scores = [s for _, _, s in recs]
        assert scores == sorted(scores, reverse=True)
        seen = set(data.item_vocab[splits.history(split).row(user_index[u])])
        assert seen >= set(data.item_vocab[split.test_target.row(user_index[u])])
        assert not seen & {i for _, i, _ in recs}


def _tensorboard_scalars(folder):
    """{tag: [(step, value)]} from the TensorBoard event files in `folder` (TFRecord framing:
    length u64, its crc u32, the Event proto, its crc u32)."""
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for path in folder.glob("events.out.tfevents.*"):
        raw = path.read_bytes()
        pos = 0
        while pos < len(raw):
            (n,) = struct.unpack("<Q", raw[pos : pos + 8])
            event = event_pb2.Event.FromString(raw[pos + 12 : pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_tensorboard_gets_one_test_tag_per_system_and_protocol_at_the_final_step(tmp_path):
    wd = tmp_path / "run"
    assert main(["train", "--workdir", str(wd), *_sets(["train.epochs=1"])]) == 0
    scalars = _tensorboard_scalars(wd / "tensorboard")
    results = json.loads((wd / "results.json").read_text())
    step = results["parameters"]["checkpoint_step"]  # the run's last step
    for r in results["results"]:
        tag = f"final_test/{r['system']}/{r['protocol']}/ndcg_10"  # tensorboardX: @ -> _
        assert scalars[tag] == [(step, pytest.approx(r["ndcg@10"]))], tag
    assert "test/ndcg_10" not in scalars  # one tag per system, not all systems under one


def test_version_help_and_the_workdir_on_a_first_run(tmp_path, capsys):
    assert main(["train", "--workdir", str(tmp_path / "w"), *_sets(["train.epochs=0"])]) == 0
    assert f"workdir: {tmp_path / 'w'}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("jaxrec ")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "bench" in text and "benchmark suites" in text
    with pytest.raises(SystemExit):
        main(["recommend", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10)" in text and "--users" in text and "--newest-checkpoint" in text


def test_sequential_model_on_a_log_without_timestamps_says_so(tmp_path, capsys):
    lines = ["user,item"] + [f"u{u},i{(u * 3 + k) % 40}" for u in range(30) for k in range(6)]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    sets = [f"data.source={tmp_path / 'log.csv'}", "train.epochs=0", "eval.baselines=[]"]
    assert main(["train", "--workdir", str(tmp_path / "w"), *_sets(sets)]) == 0
    assert "no timestamp column" in capsys.readouterr().out


def test_data_stats(tmp_path, capsys):
    f = tmp_path / "u.data"
    f.write_text("1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n")
    assert main(["data", "stats", str(f)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["users"] == 2 and stats["items"] == 2 and stats["events"] == 3


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["train", "--workdir", str(tmp_path / "w"), "--set", "train.epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'train.epochs'" in err and "Traceback" not in err
    assert main(["evaluate", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "not a jaxrec workdir" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n1 x\n")
    assert main(["data", "stats", str(bad), "--format", "sasrec"]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_different_config_in_same_workdir_refused(tmp_path, capsys):
    wd = str(tmp_path / "w")
    assert main(["train", "--workdir", wd, *_sets(["train.epochs=1"])]) == 0
    capsys.readouterr()
    assert main(["train", "--workdir", wd, *_sets(["train.epochs=1", "train.seed=5"])]) == 2
    assert "different config" in capsys.readouterr().err


def _final_params(wd):
    import jax

    from jaxrec.workdir import open_trained

    best = open_trained(wd).params
    return jax.tree.map(np.asarray, best)


@pytest.mark.slow  # the same promise, faster: tests/test_reliability.py (crash cases)
def test_sigterm_then_rerun_is_bit_identical_to_uninterrupted(tmp_path):
    """Kill the run mid-training with SIGTERM, rerun the same command: same final numbers."""
    args = _sets(["train.epochs=4", "data.synthetic.num_users=400"])
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "jaxrec.cli", "train", *args]

    straight = tmp_path / "straight"
    subprocess.run(
        [*cmd, "--workdir", str(straight)], env=env, check=True, timeout=300, capture_output=True
    )

    resumed = tmp_path / "resumed"
    proc = subprocess.Popen(
        [*cmd, "--workdir", str(resumed)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 300
    for line in proc.stdout:  # stop it once the first epoch is done: mid-epoch 2
        if line.startswith("epoch 1:") or time.time() > deadline:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 143, rest
    assert "SIGTERM: saved step" in rest
    second = subprocess.run(
        [*cmd, "--workdir", str(resumed)], env=env, timeout=300, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stdout

    def metrics(wd):
        rows = json.loads((wd / "results.json").read_text())["results"]
        return [
            {k: v for k, v in r.items() if k not in ("seconds", "users_per_second")} for r in rows
        ]

    assert metrics(straight) == metrics(resumed)
    pa, pb = _final_params(straight), _final_params(resumed)
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k


@pytest.mark.parametrize("shape", [(8, 1), (2, 4), (1, 8)])
def test_sharded_training_matches_one_device(tmp_path, shape):
    """Same config on an 8-device mesh and on 1 device: same losses and test metrics."""
    import jax

    from jaxrec import trainer
    from jaxrec.config import load_config

    cfg1 = load_config(
        None,
        [
            *TINY,
            "data.synthetic.num_items=64",  # 8 | 64: the tables really split 8 and 4 ways
            "train.epochs=1",
            "eval.protocols=[full]",
            "eval.baselines=[]",
            "mesh.data=1",
            "mesh.model=1",
        ],
    )
    cfg8 = load_config(
        None,
        [
            *TINY,
            "data.synthetic.num_items=64",  # 8 | 64: the tables really split 8 and 4 ways
            "train.epochs=1",
            "eval.protocols=[full]",
            "eval.baselines=[]",
            f"mesh.data={shape[0]}",
            f"mesh.model={shape[1]}",
        ],
    )
    one_dev = jax.devices()[:1]
    orig = trainer.sharding.make_mesh
    try:
        trainer.sharding.make_mesh = lambda d, m: orig(1, 1, devices=one_dev)
        r1 = trainer.train_and_evaluate(cfg1, tmp_path / "one")
    finally:
        trainer.sharding.make_mesh = orig
    r8 = trainer.train_and_evaluate(cfg8, tmp_path / "eight")
    m1, m8 = r1["results"][0], r8["results"][0]
    for k in ("hr@10", "ndcg@10", "mrr@10"):
        np.testing.assert_allclose(m1[k], m8[k], atol=2e-3)
    l1 = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    l8 = [json.loads(x) for x in (tmp_path / "eight" / "metrics.jsonl").read_text().splitlines()]
    loss1 = [r["loss"] for r in l1 if r["kind"] == "train"]
    loss8 = [r["loss"] for r in l8 if r["kind"] == "train"]
    np.testing.assert_allclose(loss1, loss8, rtol=1e-4)


@pytest.mark.slow  # the guard itself: tests/test_reliability.py (on device, both policies)
def test_non_finite_loss_stops_with_the_step_and_keeps_checkpoints(tmp_path, capsys):
    wd = tmp_path / "w"
    args = ["train", "--workdir", str(wd), *_sets(["train.epochs=1"])]
    assert main(args) == 0
    saved = sorted(p.name for p in (wd / "checkpoints").iterdir())
    capsys.readouterr()
    diverge = _sets(["train.epochs=3", "optim.learning_rate=.inf", "train.seed=1"])
    assert main(["train", "--workdir", str(wd), "--force", *diverge]) == 2
    err = capsys.readouterr().err
    assert "non-finite training loss before step" in err and "Traceback" not in err
    assert set(saved) <= {p.name for p in (wd / "checkpoints").iterdir()}
