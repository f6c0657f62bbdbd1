"""Train / validation / test splits, all in one shape: `Split`.

Every protocol reduces to, per user: the items the model trains on, and for each evaluation
stage an *input* (the history the model sees and that ranking excludes) and *targets*.
Leave-one-out (SASRec, Kang & McAuley 2018; Caser, Tang & Wang 2018): the last event is the
test target, the one before the validation target; users with fewer than 3 events keep all
their events in training and are not evaluated.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrec.data.interactions import Interactions, Sequences


@dataclasses.dataclass(frozen=True)
class Split:
    """All rows are indexed by dense user id (U rows each); items are dense ids.

    train: what training reads (chronological).
    valid_input / valid_target: history shown to the model and items to retrieve, for validation.
    test_input / test_target: the same for test (leave-one-out: train + the validation item).
    A user with an empty target row is not evaluated at that stage.
    """

    name: str
    num_users: int
    num_items: int
    train: Sequences
    valid_input: Sequences
    valid_target: Sequences
    test_input: Sequences
    test_target: Sequences

    def eval_users(self, stage: str) -> np.ndarray:
        """Dense ids of users with at least one target at `stage` ('valid' or 'test')."""
        target = self.valid_target if stage == "valid" else self.test_target
        return np.flatnonzero(target.lengths > 0).astype(np.int32)

    def stage(self, stage: str) -> tuple[Sequences, Sequences]:
        """(input, target) of 'valid' or 'test'."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        if stage == "valid":
            return self.valid_input, self.valid_target
        return self.test_input, self.test_target


def leave_one_out(data: Interactions, min_events: int = 3) -> Split:
    """SASRec/Caser leave-one-out: last event → test, second to last → validation."""
    seqs = data.sequences()
    train, valid, test = [], [], []
    empty = np.zeros(0, dtype=np.int32)
    for u in range(seqs.num_rows):
        r = seqs.row(u)
        if len(r) < min_events:
            train.append(r), valid.append(empty), test.append(empty)
        else:
            train.append(r[:-2]), valid.append(r[-2:-1]), test.append(r[-1:])
    train_s, valid_s = Sequences.from_rows(train), Sequences.from_rows(valid)
    return Split(
        name="leave_one_out",
        num_users=data.num_users,
        num_items=data.num_items,
        train=train_s,
        valid_input=train_s,
        valid_target=valid_s,
        test_input=train_s.concat(valid_s),
        test_target=Sequences.from_rows(test),
    )
