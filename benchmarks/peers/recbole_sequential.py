"""RecBole GRU4Rec, Caser or NextItNet on SASRec's "Games" file, SASRec leave-one-out protocol.

Run inside the venv from `recbole_setup.sh` (see README.md beside this file):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 /work/peers/recbole-venv/bin/python \
        benchmarks/peers/recbole_sequential.py --model Caser --epochs 2 \
        --out /work/peers/results/timing.json

Each model starts from jaxrec's config for it (`MODEL_DEFAULTS`; `--set KEY=VALUE` overrides
any RecBole setting, the value read as JSON). All three train RecBole's way: one
(prefix → next item) example per target, cross-entropy over every item.

Writes the RecBole atomic file, logs and checkpoints under --work-dir (outside the repo).
Full ranking over all items with every item seen before the target excluded; RecBole itself
does not exclude history for sequential models, so `SeenMaskTrainer` adds it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole's torch.load

import numpy as np  # noqa: E402
import recbole  # noqa: E402
import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model import sequential_recommender  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_logger, init_seed  # noqa: E402

DATA = "/work/shared/data/amazon-games-sasrec/Video.txt"
NAME = "games"

# jaxrec's configs/{gru4rec,caser,nextitnet}_games.yaml in RecBole's terms. MAX_ITEM_LIST_LENGTH
# is the input window: GRU4Rec 50 (RecBole's default), Caser L = 5 (RecBole's vertical filter
# spans the whole window), NextItNet 50 (jaxrec's max_length). RecBole's Caser predicts one
# next item with CE over every item (jaxrec's config: T = 3 targets, sampled softmax over
# 512 shared negatives; the paper: 3 negatives each, BCE), its examples are the same
# every-item windows, and its reg_weight is an L2-norm penalty; its NextItNet trains the
# last position of each prefix example only.
MODEL_DEFAULTS = {
    "GRU4Rec": {
        "MAX_ITEM_LIST_LENGTH": 50,
        "embedding_size": 64,
        "hidden_size": 128,
        "dropout_prob": 0.3,
        "train_batch_size": 64,
    },
    "Caser": {
        "MAX_ITEM_LIST_LENGTH": 5,
        "embedding_size": 50,
        "nh": 16,
        "nv": 4,
        "dropout_prob": 0.5,
        "reg_weight": 1e-5,
        "train_batch_size": 512,
    },
    "NextItNet": {
        "MAX_ITEM_LIST_LENGTH": 50,
        "embedding_size": 256,
        "kernel_size": 3,
        "block_num": 2,
        "dilations": [1, 2, 4, 8],
        "reg_weight": 1e-5,
        "train_batch_size": 32,
    },
}


class OutOfTime(Exception):
    """Raised after an epoch once --max-minutes of training have passed."""


def write_inter(src: str, work: Path) -> Path:
    """`user item` lines → RecBole .inter; timestamp = position in the user's sequence."""
    out = work / NAME / f"{NAME}.inter"
    out.parent.mkdir(parents=True, exist_ok=True)
    pos: dict[str, int] = {}
    with open(src) as f, open(out, "w") as g:
        g.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in f:
            user, item = line.split()
            pos[user] = pos.get(user, -1) + 1
            g.write(f"{user}\t{item}\t{pos[user]}\n")
    return out


class FirstBatches:
    """The first `n` batches of a RecBole DataLoader (other attributes pass through)."""

    def __init__(self, loader, n: int):
        self.loader, self.n, self.count = loader, n, 0

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return min(self.n, len(self.loader))

    def __iter__(self):
        for batch in self.loader:
            if self.count == self.n:
                return
            self.count += 1
            yield batch


class SeenMaskTrainer(Trainer):
    """Times each training / validation epoch and masks seen items in full-sort evaluation."""

    def __init__(self, config, model, dataset, src):
        super().__init__(config, model)
        self.train_s: list[float] = []
        self.valid_s: list[float] = []
        self.valid_log: list[dict] = []
        self.load_avg: list[float] = []  # 1-min load average after each epoch (shared machine?)
        self.max_batches = 0  # > 0: train only the first batches of each epoch (a timing run)
        self.trained_batches: list[int] = []
        # Full chronological sequences as internal ids (CSR), to mask beyond the 50-item window.
        users, items = np.loadtxt(src, dtype=str, unpack=True)
        uid = dataset.token2id(dataset.uid_field, users)
        iid = dataset.token2id(dataset.iid_field, items)
        order = np.argsort(uid, kind="stable")
        self.items = torch.as_tensor(iid[order])
        self.start = torch.as_tensor(
            np.searchsorted(uid[order], np.arange(dataset.user_num)), dtype=torch.long
        )

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self.max_batches:
            train_data = FirstBatches(train_data, self.max_batches)
        t = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.trained_batches.append(train_data.count if self.max_batches else len(train_data))
        self.train_s.append(time.perf_counter() - t)
        self.load_avg.append(os.getloadavg()[0])
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        t = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress)
        self.valid_s.append(time.perf_counter() - t)
        self.valid_log.append({k: float(v) for k, v in result.items()})
        return score, result

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, pos_u, pos_i = super()._full_sort_batch_eval(batched_data)
        # The target's timestamp is its position p: the seen items are sequence[:p].
        n = interaction[self.config["TIME_FIELD"]].long().cpu()
        rows = torch.repeat_interleave(torch.arange(len(n)), n)
        first = torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        start = torch.repeat_interleave(self.start[interaction[self.config["USER_ID_FIELD"]]], n)
        cols = self.items[start + torch.arange(len(rows)) - first]
        scores[rows.to(scores.device), cols.to(scores.device)] = -np.inf
        return interaction, scores, pos_u, pos_i


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(MODEL_DEFAULTS), default="GRU4Rec")
    p.add_argument("--batch-size", type=int, default=0, help="0: the model's default")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--stopping-step", type=int, default=3)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--max-minutes", type=float, default=0, help="stop after the epoch that passes")
    p.add_argument(
        "--max-batches",
        type=int,
        default=0,
        help="train only the first N batches of each epoch (timing runs)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a RecBole setting (value parsed as JSON), repeatable",
    )
    p.add_argument("--data", default=DATA)
    p.add_argument("--work-dir", default=os.environ.get("RECBOLE_WORK", "/work/peers/recbole-work"))
    p.add_argument("--out", required=True, help="JSON file to write")
    a = p.parse_args()
    out, work, src = Path(a.out).resolve(), Path(a.work_dir).resolve(), str(Path(a.data).resolve())
    work.mkdir(parents=True, exist_ok=True)
    if a.threads:
        torch.set_num_threads(a.threads)
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory

    settings = dict(MODEL_DEFAULTS[a.model])
    if a.batch_size:
        settings["train_batch_size"] = a.batch_size
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        settings[key] = json.loads(value)
    t0 = time.perf_counter()
    write_inter(src, work)
    config = Config(
        model=a.model,
        dataset=NAME,
        config_dict={
            "data_path": str(work),
            "checkpoint_dir": str(work / "saved"),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "order": "TO",
                "mode": "full",
                "group_by": "user",
            },
            "train_neg_sample_args": None,
            "loss_type": "CE",
            "metrics": ["Hit", "NDCG"],
            "topk": [10, 20],
            "valid_metric": "NDCG@10",
            "learning_rate": a.lr,
            "epochs": a.epochs,
            "stopping_step": a.stopping_step,
            "seed": a.seed,
            "use_gpu": False,
            "show_progress": False,
            **settings,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prep_s = time.perf_counter() - t0

    model = getattr(sequential_recommender, a.model)(config, train_data.dataset)
    trainer = SeenMaskTrainer(config, model, dataset, src)
    trainer.max_batches = a.max_batches
    t_fit = time.perf_counter()

    def budget(epoch, score):
        if a.max_minutes and time.perf_counter() - t_fit > 60 * a.max_minutes:
            raise OutOfTime(f"stopped after epoch {epoch}: --max-minutes {a.max_minutes}")

    stop = "early stopping or --epochs"
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=budget)
    except OutOfTime as e:
        stop = str(e)
    best = torch.load(trainer.saved_model_file, map_location="cpu")
    model.load_state_dict(best["state_dict"])
    t = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=False)
    test_s = time.perf_counter() - t

    n_train = len(train_data.dataset)
    result = {
        "model": f"RecBole {a.model}",
        "settings": settings,
        "data": src,
        "args": vars(a),
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__},
        "torch_num_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "dataset": {  # RecBole counts a padding id 0 in user_num / item_num
            "users": dataset.user_num - 1,
            "items": dataset.item_num - 1,
            "events": len(trainer.items),
        },
        "rows": {
            "train": n_train,
            "valid": len(valid_data.dataset),
            "test": len(test_data.dataset),
        },
        "train_examples_per_epoch": n_train,
        "epochs_run": len(trainer.train_s),
        "stopped_by": stop,
        "best_epoch": int(best["epoch"]),
        "epoch_train_s": trainer.train_s,
        # Examples actually trained per epoch: all rows, or the first --max-batches batches.
        "trained_examples_per_epoch": [
            min(n_train, b * settings["train_batch_size"]) for b in trainer.trained_batches
        ],
        "examples_per_s": [
            min(n_train, b * settings["train_batch_size"]) / s
            for b, s in zip(trainer.trained_batches, trainer.train_s, strict=True)
        ],
        "valid_users_per_s": [len(valid_data.dataset) / s for s in trainer.valid_s],
        "epoch_valid_s": trainer.valid_s,
        "load_avg_1min": trainer.load_avg,
        "valid_per_epoch": trainer.valid_log,
        "data_prep_s": prep_s,
        "test_eval_s": test_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "valid": {k: float(v) for k, v in (trainer.best_valid_result or {}).items()},
        "test": {k: float(v) for k, v in test.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
