"""Train / validation / test splits, all in one shape: `Split`.

Every protocol reduces to, per user: the items the model trains on, and for each evaluation
stage an *input* (the history the model sees and that ranking excludes) and *targets*.
Leave-one-out (SASRec, Kang & McAuley 2018; Caser, Tang & Wang 2018): the last event is the
test target, the one before the validation target; users with fewer than 3 events keep all
their events in training and are not evaluated. Also: `temporal_ratio` (per-user
chronological fractions), `heldout_users` (Mult-VAE strong generalisation with fold-in),
`presplit` (train/valid/test read from separate files) and `make_split` (by name).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect

import numpy as np

from jaxrec.data.interactions import Interactions, Sequences, _natural_sort
from jaxrec.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Split:
    """All rows are indexed by dense user id (U rows each); items are dense ids.

    train: what training reads (chronological).
    valid_input / valid_target: history shown to the model and items to retrieve, for validation.
    test_input / test_target: the same for test (leave-one-out: train + the validation item).
    test_seen: items excluded from test ranking when they are more than test_input (DiffRec's
    rule: the model reads train only, train and valid items are both excluded); None: input.
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
    test_seen: Sequences | None = None

    def seen(self, stage: str) -> Sequences:
        """The items ranking excludes at `stage`: the input row, or `test_seen` for test."""
        if stage == "test" and self.test_seen is not None:
            return self.test_seen
        return self.stage(stage)[0]

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


def _subset(seqs: Sequences, rows: np.ndarray, mask: np.ndarray) -> Sequences:
    """The events of `seqs` where mask [nnz] is True, row by row, order kept. rows: row of
    each event [nnz]."""
    counts = np.bincount(rows[mask], minlength=seqs.num_rows)
    indptr = np.zeros(seqs.num_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Sequences(indptr, seqs.items[mask].astype(np.int32))


def _concat(a: Sequences, b: Sequences) -> Sequences:
    """Row-wise a ++ b without a Python loop over rows (same result as `a.concat(b)`)."""
    rows = np.concatenate([np.repeat(np.arange(x.num_rows), x.lengths) for x in (a, b)])
    order = np.argsort(rows, kind="stable")
    return Sequences(a.indptr + b.indptr, np.concatenate([a.items, b.items])[order])


def _from_parts(name: str, data: Interactions, part: np.ndarray) -> Split:
    """Split from part [N] ∈ {0 train, 1 valid, 2 test} per event of data.sequences()."""
    seqs = data.sequences()
    rows = np.repeat(np.arange(seqs.num_rows), seqs.lengths)
    train, valid, test = (_subset(seqs, rows, part == k) for k in range(3))
    return Split(
        name=name,
        num_users=data.num_users,
        num_items=data.num_items,
        train=train,
        valid_input=train,
        valid_target=valid,
        test_input=_concat(train, valid),
        test_target=test,
    )


def temporal_ratio(data: Interactions, valid: float = 0.1, test: float = 0.1) -> Split:
    """Per user, chronological: the last `test` fraction → test, the `valid` fraction before
    it → validation, the rest → train; test_input = train ++ valid.

    Counts follow RecBole's ratio split (`RO` order, `Dataset._calcu_split_ids`): a fraction of
    a user's n events is floor(fraction · n) (with a 1e-9 guard against float error); then,
    while train keeps more than one event, a fraction with 0 < fraction · n < 1 still gets one
    event, test first. So n=1 → (train 1, valid 0, test 0); n=2 → (1, 0, 1); n=3 → (1, 1, 1);
    n=10 → (8, 1, 1).
    """
    if not (0 <= valid and 0 <= test and valid + test < 1):
        raise ConfigError(f"need valid >= 0, test >= 0, valid + test < 1; got {valid}, {test}")
    n = np.bincount(data.user_ids, minlength=data.num_users)
    n_valid = np.floor(valid * n + 1e-9).astype(np.int64)
    n_test = np.floor(test * n + 1e-9).astype(np.int64)
    n_train = n - n_valid - n_test
    for frac, count in ((test, n_test), (valid, n_valid)):
        bump = (n_train > 1) & (0 < frac * n) & (frac * n < 1)
        count += bump
        n_train -= bump
    rows = np.repeat(np.arange(data.num_users), n)
    pos = np.arange(len(rows)) - (np.cumsum(n) - n)[rows]  # position inside the user's row
    part = (pos >= n_train[rows]).astype(np.int8) + (pos >= (n_train + n_valid)[rows])
    return _from_parts("temporal_ratio", data, part)


def heldout_users(
    data: Interactions,
    num_valid_users: int,
    num_test_users: int,
    fold_in: float = 0.8,
    seed: int = 0,
) -> Split:
    """Strong generalisation with fold-in (Mult-VAE, Liang et al. WWW 2018; dawenl/vae_cf).

    Users are shuffled with `seed`; the last num_test_users are test users, the
    num_valid_users before them validation users, the rest train users, whose events all go
    to `train`. Held-out users have empty train rows. Their events on items no train user has
    are dropped, as vae_cf keeps only items seen in training (the vocabulary stays; those
    items just have no events). Of a held-out user's n remaining events, floor((1 - fold_in)
    · n) chosen at random are the target and the rest the input (fold-in); a user with n < 5
    keeps all n as input and is not evaluated (vae_cf's rule). Rows stay chronological.
    """
    u = data.num_users
    if not 0 < fold_in < 1:
        raise ConfigError(f"fold_in must be in (0, 1), got {fold_in}")
    if min(num_valid_users, num_test_users) < 0 or num_valid_users + num_test_users >= u:
        raise ConfigError(
            f"holding out {num_valid_users} validation and {num_test_users} test users of {u} "
            "leaves no train user; hold out fewer"
        )
    rng = np.random.default_rng(seed)
    group = np.empty(u, dtype=np.int8)  # 0 train, 1 valid, 2 test
    sizes = [u - num_valid_users - num_test_users, num_valid_users, num_test_users]
    group[rng.permutation(u)] = np.repeat([0, 1, 2], sizes)
    seqs = data.sequences()
    rows = np.repeat(np.arange(u), seqs.lengths)
    ev_group = group[rows]
    seen = np.zeros(data.num_items, dtype=bool)
    seen[seqs.items[ev_group == 0]] = True
    held = np.flatnonzero((ev_group > 0) & seen[seqs.items])
    n = np.bincount(rows[held], minlength=u)
    n_target = np.where(n >= 5, np.floor((1 - fold_in) * n + 1e-9), 0).astype(np.int64)
    # a uniformly random subset of each user's events: the first n_target by a random key
    order = held[np.lexsort((rng.random(len(held)), rows[held]))]
    rank = np.arange(len(order)) - (np.cumsum(n) - n)[rows[order]]
    part = np.full(len(rows), -1, dtype=np.int8)  # -1 dropped, 0 train, 1 input, 2 target
    part[ev_group == 0] = 0
    part[order] = 1 + (rank < n_target[rows[order]])
    stage = {
        (g, p): _subset(seqs, rows, (ev_group == g) & (part == p)) for g in (1, 2) for p in (1, 2)
    }
    return Split(
        name="heldout_users",
        num_users=u,
        num_items=data.num_items,
        train=_subset(seqs, rows, part == 0),
        valid_input=stage[1, 1],
        valid_target=stage[1, 2],
        test_input=stage[2, 1],
        test_target=stage[2, 2],
    )


def align_vocab(*parts: Interactions) -> tuple[Interactions, ...]:
    """The same events re-indexed over one shared vocabulary: the union of the parts' raw ids,
    ordered as `Interactions.from_raw` orders them (numeric when all ids are integers)."""
    union = [
        _natural_sort(np.unique(np.concatenate([getattr(p, f"{k}_vocab") for p in parts])))
        for k in ("user", "item")
    ]
    out = []
    for p in parts:
        users, items = (
            _lookup(vocab, getattr(p, f"{k}_vocab"))[getattr(p, f"{k}_ids")]
            for vocab, k in zip(union, ("user", "item"), strict=True)
        )
        order = np.argsort(users, kind="stable")  # events stay chronological inside a user
        out.append(
            Interactions(
                user_ids=users[order],
                item_ids=items[order],
                timestamps=None if p.timestamps is None else p.timestamps[order],
                ratings=None if p.ratings is None else p.ratings[order],
                user_vocab=union[0],
                item_vocab=union[1],
                source=p.source,
            )
        )
    return tuple(out)


def _lookup(vocab: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Dense ids (int32) of raw ids that are all in vocab."""
    index = np.argsort(vocab, kind="stable")
    return index[np.searchsorted(vocab[index], raw)].astype(np.int32)


def presplit(
    train: Interactions,
    valid: Interactions | None,
    test: Interactions,
    test_input: str = "train_valid",
) -> Split:
    """A split given as separate files (e.g. IRGAN/CFGAN train/test, DiffRec train/valid/test).

    The three are mapped to one vocabulary (`align_vocab`; call it too to get the raw ↔ dense
    id maps). Users and items that appear only in valid or test stay in the vocabulary: they
    are part of the catalogue and of the ranking, with no training events (dropping them would
    silently shrink the test set and change the metrics). valid=None → no validation stage.
    test_input='train_valid': the test input is train ++ valid, and ranking excludes both.
    test_input='train' (DiffRec): the model reads the train rows only; ranking still excludes
    train ++ valid (`Split.test_seen`).
    """
    if test_input not in ("train_valid", "train"):
        raise ConfigError(f"data.test_input={test_input!r}: expected train_valid or train")
    parts = (train, test) if valid is None else (train, valid, test)
    aligned = align_vocab(*parts)
    seqs = [p.sequences() for p in aligned]
    if valid is None:
        u = aligned[0].num_users
        seqs.insert(1, Sequences(np.zeros(u + 1, dtype=np.int64), np.zeros(0, np.int32)))
    tr, va, te = seqs
    return Split(
        name="presplit",
        num_users=aligned[0].num_users,
        num_items=aligned[0].num_items,
        train=tr,
        valid_input=tr,
        valid_target=va,
        test_input=_concat(tr, va) if test_input == "train_valid" else tr,
        test_target=te,
        test_seen=None if test_input == "train_valid" else _concat(tr, va),
    )


def valid_into_train(split: Split) -> Split:
    """The split with each user's validation targets appended to their training events and no
    validation stage: the refit of a model whose epoch count a validation run chose.

    Test is unchanged (same input, targets and excluded items), so a refit model is tested on
    the same rows as the model it refits, and like the Markov chain and the other baselines
    (which count the test input, i.e. train ++ valid), it has learned from the validation
    transitions. Needs a split whose validation users are training users (leave_one_out,
    temporal_ratio, presplit); heldout_users' validation users are other users.
    """
    if not _same_rows(split.valid_input, split.train):
        raise ConfigError(
            f"data.train_on_valid: the {split.name} split's validation input is not the "
            "training rows (held-out users), so there is nothing to append them to"
        )
    if split.valid_target.items.size == 0:
        raise ConfigError(
            f"data.train_on_valid: the {split.name} split has no validation events to train on"
        )
    train = _concat(split.train, split.valid_target)
    empty = Sequences(np.zeros(split.num_users + 1, dtype=np.int64), np.zeros(0, np.int32))
    return dataclasses.replace(
        split,
        name=f"{split.name}, valid in train",
        train=train,
        valid_input=train,
        valid_target=empty,
    )


def history(split: Split) -> Sequences:
    """Every event of every user, all stages together: the history a served model reads
    (`jaxrec recommend` and `embed` by default) and what serving excludes.

    Where the validation users are the training users (leave-one-out, temporal ratio,
    presplit, refits) a row is train ++ valid targets ++ test targets, i.e. the user's whole
    log in order. Held-out users have no training row; theirs is input ++ targets of their
    stage (fold-in input first; the order inside a bag of items does not matter to the
    autoencoders this protocol is for).
    """
    if _same_rows(split.valid_input, split.train):
        parts = (split.train, split.valid_target, split.test_target)
    else:
        parts = (
            split.train,
            split.valid_input,
            split.valid_target,
            split.test_input,
            split.test_target,
        )
    out = parts[0]
    for p in parts[1:]:
        out = _concat(out, p)
    return out


def _same_rows(a: Sequences, b: Sequences) -> bool:
    return a is b or (np.array_equal(a.indptr, b.indptr) and np.array_equal(a.items, b.items))


PROTOCOLS = {
    "leave_one_out": leave_one_out,
    "temporal_ratio": temporal_ratio,
    "heldout_users": heldout_users,
}


def make_split(data: Interactions, protocol: str, **kwargs) -> Split:
    """Split `data` with the protocol named `protocol` (a key of PROTOCOLS) and its kwargs.

    `presplit` is not here: it needs three inputs, not one.
    """
    if protocol not in PROTOCOLS:
        near = difflib.get_close_matches(protocol, PROTOCOLS, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(f"unknown split {protocol!r}; {hint}known: {', '.join(PROTOCOLS)}")
    fn = PROTOCOLS[protocol]
    try:  # check the arguments first, so a TypeError from inside the split is not masked
        inspect.signature(fn).bind(data, **kwargs)
    except TypeError as e:
        raise ConfigError(f"split {protocol!r}: {e}") from None
    return fn(data, **kwargs)
