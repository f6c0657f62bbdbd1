"""RecBole Mult-VAE / Mult-DAE / CDAE on the DiffRec ML-1M "clean" split, timed per epoch.

Run inside the venv from `recbole_setup.sh` (see README.md beside this file):

    /work/peers/recbole-venv/bin/python benchmarks/peers/recbole_autoencoder.py \
        --model MultiVAE --epochs 200 --threads 2 --out /work/peers/results/recbole_multvae.json

The given train / valid / test pairs (`train_list.npy`, ...) become RecBole benchmark files
(`benchmark_filename: [train, valid, test]`), so both systems train and test on the same
split. Hyperparameters default to jaxrec's configs/<model>_ml1m.yaml: Mult-VAE/DAE encoder
600 → 200, dropout 0.5, Adam 1e-3, batch 500 users, β cap 0.2 reached after 10,000 updates;
CDAE 50 hidden units, corruption 0.2, sigmoid/sigmoid, batch 256 users (RecBole's CDAE
scores the full output with BCE; jaxrec's config samples 5 negatives per positive). Full
ranking, Recall / NDCG @10, @20 with RecBole's recall denominator |T|. RecBole feeds
autoencoders user batches (`UserDataLoader`: `train_batch_size` users, each row the user's
whole multi-hot vector), as jaxrec does, so an epoch is one pass over the users in both.
Validation runs every `--eval-step` epochs (jaxrec's configs: every 10).
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
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import get_model, init_logger, init_seed  # noqa: E402

DATA = "/work/shared/data/ml-1m-diffrec-clean"
NAME = "ml1m_clean"


def write_inter(src: Path, work: Path) -> None:
    """`{train,valid,test}_list.npy` [n, 2] pairs → RecBole `<name>.<part>.inter` files."""
    folder = work / NAME
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        pairs = np.load(src / f"{part}_list.npy", allow_pickle=False)
        with open(folder / f"{NAME}.{part}.inter", "w") as f:
            f.write("user_id:token\titem_id:token\n")
            f.writelines(f"{u}\t{i}\n" for u, i in pairs)


class TimedTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_s: list[float] = []
        self.valid_s: list[float] = []
        self.load_avg: list[float] = []

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        t = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.train_s.append(time.perf_counter() - t)
        self.load_avg.append(os.getloadavg()[0])
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        t = time.perf_counter()
        out = super()._valid_epoch(valid_data, show_progress)
        self.valid_s.append(time.perf_counter() - t)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("MultiVAE", "MultiDAE", "CDAE"), default="MultiVAE")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, help="users per batch (default: jaxrec's config)")
    p.add_argument("--eval-step", type=int, default=10, help="validate every N epochs")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--data", default=DATA)
    p.add_argument("--work-dir", default=os.environ.get("RECBOLE_WORK", "/work/peers/recbole-work"))
    p.add_argument("--out", required=True, help="JSON file to write")
    a = p.parse_args()
    out, work = Path(a.out).resolve(), Path(a.work_dir).resolve() / "autoencoder"
    work.mkdir(parents=True, exist_ok=True)
    if a.threads:
        torch.set_num_threads(a.threads)
    os.chdir(work)
    t0 = time.perf_counter()
    write_inter(Path(a.data), work)
    model_args = {
        "MultiVAE": {
            "mlp_hidden_size": [600],
            "latent_dimension": 200,
            "dropout_prob": 0.5,
            "anneal_cap": 0.2,
            "total_anneal_steps": 10000,
        },
        "MultiDAE": {"mlp_hidden_size": [600], "latent_dimension": 200, "dropout_prob": 0.5},
        "CDAE": {
            "embedding_size": 50,
            "corruption_ratio": 0.2,
            "hid_activation": "sigmoid",
            "out_activation": "sigmoid",
            "loss_type": "BCE",
        },
    }[a.model]
    config = Config(
        model=a.model,
        dataset=NAME,
        config_dict={
            "data_path": str(work),
            "checkpoint_dir": str(work / "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id"]},
            "eval_args": {"mode": "full", "group_by": "user", "order": "RO"},
            "train_neg_sample_args": None,
            "metrics": ["Recall", "NDCG"],
            "topk": [10, 20],
            "valid_metric": "NDCG@20",  # jaxrec's eval.metric, patience 5 validations
            "stopping_step": 5,
            "train_batch_size": a.batch_size or (256 if a.model == "CDAE" else 500),
            "eval_step": a.eval_step,
            "learning_rate": a.lr,
            "epochs": a.epochs,
            "seed": a.seed,
            "use_gpu": False,
            "show_progress": False,
            **model_args,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prep_s = time.perf_counter() - t0
    model = get_model(a.model)(config, train_data.dataset)
    trainer = TimedTrainer(config, model)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    t = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True)  # the best-validation epoch
    test_s = time.perf_counter() - t
    n_rows = train_data.sample_size  # users per epoch (UserDataLoader)
    result = {
        "model": f"RecBole {a.model}",
        "data": a.data,
        "args": vars(a),
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__},
        "torch_num_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "train_users_per_epoch": n_rows,
        "users_per_s": [n_rows / x for x in trainer.train_s],
        "valid_users_per_s": [len(valid_data.uid_list) / x for x in trainer.valid_s],
        "train_users": int(len(np.unique(train_data.dataset.inter_feat["user_id"].numpy()))),
        "epoch_train_s": trainer.train_s,
        "epoch_valid_s": trainer.valid_s,
        "load_avg_1min": trainer.load_avg,
        "data_prep_s": prep_s,
        "test_eval_s": test_s,
        "test_users": len(test_data.dataset.inter_feat["user_id"].unique()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test": {k: float(v) for k, v in test.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
