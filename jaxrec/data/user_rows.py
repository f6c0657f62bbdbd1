"""grain pipeline of user rows: mini-batches of users, each row a padded list of item ids.

The autoencoders (Mult-VAE/DAE, CDAE, AutoRec) and the GANs (CFGAN, IRGAN) train on whole
user rows. The host ships each row as item ids + mask, never a dense [B, I] multi-hot: the
device builds that (items-sharded) itself, so host→device traffic follows the events, not
the catalogue. Every epoch visits the users with at least one training event once, in an
order that is a pure function of (seed, epoch); the last mini-batch of an epoch is padded
with invalid rows (`valid` False) so every batch has the same shape and compiles once. The
iterator state is an index, so checkpoints restore the exact data order.
"""

from __future__ import annotations

import grain
import numpy as np

from jaxrec.data.interactions import Sequences
from jaxrec.errors import ConfigError


class UserRowBatches:
    """grain random-access source: element i = mini-batch (epoch, j) of user rows.

    seqs: training rows (U rows); values: optional float32 [num events] aligned with
    `seqs.items` (e.g. ratings), shipped as `values`. max_items: row width M; a longer row
    keeps its last M items (default: the longest row, so nothing is dropped).
    Each element: users int32 [b], ids int32 [b, M], mask bool [b, M], valid bool [b]
    (+ values float32 [b, M]), `_epoch`, `_last`; b = batch_size / process_count.
    """

    def __init__(
        self,
        seqs: Sequences,
        *,
        batch_size: int,
        epochs: int,
        seed: int,
        shuffle: bool = True,
        max_items: int | None = None,
        values: np.ndarray | None = None,
        process_index: int = 0,
        process_count: int = 1,
    ):
        if batch_size % process_count:
            raise ConfigError(
                f"train.batch_size={batch_size} must be a multiple of the {process_count} processes"
            )
        self.seqs, self.values = seqs, values
        self.users = np.flatnonzero(seqs.lengths > 0).astype(np.int32)
        if len(self.users) == 0:
            raise ConfigError("no user has a training event: nothing to learn from")
        longest = int(seqs.lengths.max())
        self.width = longest if max_items is None else min(max_items, longest)
        self.batch_size, self.epochs, self.seed, self.shuffle = batch_size, epochs, seed, shuffle
        per = batch_size // process_count
        self.columns = slice(process_index * per, (process_index + 1) * per)
        self.steps = -(-len(self.users) // batch_size)  # mini-batches per epoch

    def __len__(self) -> int:
        return self.epochs * self.steps

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return self.users
        return np.random.default_rng([self.seed, epoch]).permutation(self.users)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        epoch, j = divmod(int(index), self.steps)
        chosen = self.order(epoch)[j * self.batch_size : (j + 1) * self.batch_size]
        valid = np.zeros(self.batch_size, bool)
        valid[: len(chosen)] = True
        users = np.zeros(self.batch_size, np.int32)
        users[: len(chosen)] = chosen
        users, valid = users[self.columns], valid[self.columns]
        ids, mask = self.seqs.padded(users, self.width, left=False)
        mask &= valid[:, None]
        batch = {"users": users, "ids": ids, "mask": mask, "valid": valid}
        if self.values is not None:
            batch["values"] = self._values(users, mask)
        batch["_epoch"] = np.int64(epoch)
        batch["_last"] = np.bool_(j == self.steps - 1)
        return batch

    def _values(self, users: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.zeros(mask.shape, np.float32)
        for r, u in enumerate(users):
            lo, hi = self.seqs.indptr[u], self.seqs.indptr[u + 1]
            v = self.values[max(lo, hi - self.width) : hi]
            out[r, : len(v)] = v
        return out * mask


def user_rows_dataset(seqs: Sequences, **kwargs) -> grain.IterDataset:
    """A checkpointable grain dataset of user-row mini-batches (see `UserRowBatches`)."""
    options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
    return grain.MapDataset.source(UserRowBatches(seqs, **kwargs)).to_iter_dataset(options)
