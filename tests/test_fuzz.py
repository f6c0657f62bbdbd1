"""Property-based fuzzing of every input jaxrec parses: data files, configs, command lines.

The property: bad input gives a jaxrec error (a `JaxrecError`; for data, a `DataError` that
names the file) or a valid result; never another exception, never a hang (hypothesis
deadline per example, pytest-timeout per test). The default suite runs a bounded number of
examples; `-m slow` runs many more.
"""

import contextlib
import datetime
import io
import os
import re
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxrec.data import formats
from jaxrec.errors import ConfigError, DataError

FAST = settings(
    max_examples=60,
    deadline=datetime.timedelta(seconds=10),  # generous: a loaded 2-core machine; a hang is minutes
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MANY = settings(FAST, max_examples=1500)

TEXT_FORMATS = ("movielens-100k", "movielens-1m", "sasrec", "sequence-lines", "recbole", "csv")
VALID = {  # a small valid file of each text format
    "movielens-100k": "1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n",
    "movielens-1m": "1::10::5::100\n1::11::3::101\n2::10::4::102\n",
    "sasrec": "1 10\n1 11\n2 10\n",
    "sequence-lines": "1 10 11 12\n2 10 13\n",
    "recbole": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n",
    "csv": 'user,item,rating,timestamp\n1,10,5,100\n1,"11",3,2020-01-02\n2,10,4,102\n',
}
SUFFIX = {"csv": ".csv", "recbole": ".inter", "movielens-1m": ".dat"}
# Things that break parsers: separators, quotes, signs, exponents, non-finite, huge, unicode.
NASTY = [
    "",
    " ",
    "\t",
    "::",
    ",",
    '"',
    "'",
    "\r",
    "\n",
    "\x00",
    "\ufeff",
    "-",
    "+",
    "e",
    "1e400",
    "-1e400",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "9" * 30,
    "-0",
    "0x10",
    "1_000",
    "٣",
    "1.5",
    ".",
    "2020-13-45",
    "2020-01-01T25:00",
    ":token",
    "user_id:token",
    "\\",
    "%s",
    "{}",
    "None",
    "\u202e",
    "😀",
    "\udcff",
]


def outcome(path, fmt=None, **kw) -> str:
    """'ok' (with a consistent result) or 'error: <Type>'; anything else propagates."""
    try:
        data = formats.read_interactions(path, fmt, **kw)
    except DataError as e:
        assert e.path is not None, f"DataError without a file: {e}"
        return "error: DataError"
    except ConfigError:
        return "error: ConfigError"
    n = data.num_events
    assert n > 0 and len(data.user_ids) == n
    assert data.user_ids.min() >= 0 and data.user_ids.max() < data.num_users
    assert data.item_ids.min() >= 0 and data.item_ids.max() < data.num_items
    for x in (data.timestamps, data.ratings):
        assert x is None or (len(x) == n and np.isfinite(x).all())
    return "ok"


def _write(tmp_path: Path, content: bytes, suffix: str = ".txt") -> Path:
    p = tmp_path / f"f{suffix}"
    p.write_bytes(content)
    return p


# --- data readers ---------------------------------------------------------------------------

FORMAT_OR_AUTO = st.sampled_from([None, *formats.FORMATS])


@FAST
@given(content=st.binary(max_size=400), fmt=FORMAT_OR_AUTO)
def test_random_bytes(tmp_path, content, fmt):
    outcome(_write(tmp_path, content), fmt)


def _mutate(text: str, data) -> str:
    """Apply 1-4 random edits to a valid file: cut, insert nasty tokens, drop/duplicate
    characters or lines, swap separators."""
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["cut", "insert", "delete", "dup-line", "swap"]))
        i = data.draw(st.integers(0, len(text)))
        if op == "cut":
            text = text[:i]
        elif op == "insert":
            tok = data.draw(st.sampled_from(NASTY) | st.text(max_size=5))
            text = text[:i] + tok + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + data.draw(st.integers(1, 4)) :]
        elif op == "dup-line":
            lines = text.split("\n")
            j = data.draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[: j + 1] + lines[j:])
        else:
            a, b = (
                data.draw(st.sampled_from(["\t", " ", ",", "::", ":"]), label="from"),
                (data.draw(st.sampled_from(["\t", " ", ",", "::", ";", ""]), label="to")),
            )
            text = text.replace(a, b)
    return text


def _check_mutated(tmp_path, fmt, data, auto):
    text = _mutate(VALID[fmt], data)
    raw = text.encode("utf-8", errors="surrogateescape")
    path = _write(tmp_path, raw, SUFFIX.get(fmt, ".txt"))
    outcome(path, None if auto else fmt)


@FAST
@given(fmt=st.sampled_from(TEXT_FORMATS), data=st.data(), auto=st.booleans())
def test_mutated_valid_files(tmp_path, fmt, data, auto):
    _check_mutated(tmp_path, fmt, data, auto)


@FAST
@given(
    rows=st.lists(
        st.lists(st.sampled_from(NASTY) | st.text(string.printable, max_size=6), max_size=6),
        max_size=8,
    ),
    sep=st.sampled_from(["\t", " ", ",", "::", ";"]),
    fmt=st.sampled_from(TEXT_FORMATS),
)
def test_random_fields(tmp_path, rows, sep, fmt):
    text = "\n".join(sep.join(r) for r in rows)
    path = _write(tmp_path, text.encode("utf-8", errors="surrogateescape"), SUFFIX.get(fmt, ""))
    outcome(path, fmt)


@FAST
@given(
    columns=st.none()
    | st.dictionaries(
        st.sampled_from(["user", "item", "rating", "timestamp", "x", ""]),
        st.sampled_from(["user", "item", "0", "1", "7", "-1", "", "rating"]) | st.integers(-2, 9),
        max_size=4,
    ),
    sep=st.none() | st.sampled_from([",", "\t", "", "::", " "]),
    fmt=st.sampled_from([None, "csv", "recbole", "parquet", "sasrec"]),
)
def test_random_column_mappings(tmp_path, columns, sep, fmt):
    path = _write(tmp_path, VALID["csv"].encode(), ".csv")
    try:
        outcome(path, fmt, columns=columns, sep=sep)
    except ConfigError:
        pass


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@FAST
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    dtype=st.sampled_from(["int64", "int8", "uint16", "float32", "bool", "U3", "complex64"]),
    cut=st.integers(0, 200),
    flip=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=3),
)
def test_npy_arrays_and_damaged_headers(tmp_path, shape, dtype, cut, flip):
    raw = bytearray(_npy_bytes(np.ones(shape, dtype=dtype)))
    for i, x in flip:
        if i < len(raw):
            raw[i] ^= x
    if cut < len(raw) and cut % 3 == 0:
        raw = raw[:cut]
    outcome(_write(tmp_path, bytes(raw), ".npy"), "npy-pairs")


@FAST
@given(
    cut=st.integers(0, 2000),
    flip=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=3),
)
def test_damaged_parquet(tmp_path, cut, flip):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"user": ["a", "b", None], "item": [1, 2, 3], "rating": [1.0, float("nan"), 2.0]}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    raw = bytearray(buf.getvalue())
    for i, x in flip:
        if i < len(raw):
            raw[i] ^= x
    raw = raw[: max(cut, 1)] if cut < len(raw) else raw
    outcome(_write(tmp_path, bytes(raw), ".parquet"), None)


@pytest.mark.slow
@MANY
@given(fmt=st.sampled_from(TEXT_FORMATS), data=st.data(), auto=st.booleans())
def test_mutated_valid_files_many(tmp_path, fmt, data, auto):
    _check_mutated(tmp_path, fmt, data, auto)


@pytest.mark.slow
@MANY
@given(content=st.binary(max_size=2000), fmt=FORMAT_OR_AUTO)
def test_random_bytes_many(tmp_path, content, fmt):
    outcome(_write(tmp_path, content), fmt)


# --- config parser --------------------------------------------------------------------------

KEYS = ["data", "model", "loss", "optim", "train", "eval", "mesh", "gru4rec", "epochs", "x"]
YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(NASTY),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def _load(tmp_path, text: str, overrides=()):
    from jaxrec.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_config(path, list(overrides))
    except ConfigError:
        pass


@FAST
@given(text=st.text(max_size=300) | st.sampled_from(NASTY))
def test_config_random_text(tmp_path, text):
    _load(tmp_path, text)


@FAST
@given(
    doc=st.dictionaries(st.sampled_from(KEYS[:7]) | st.text(max_size=4), YAML_VALUES, max_size=4)
)
def test_config_random_structures(tmp_path, doc):
    import yaml

    _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


SECTION_KEYS = [
    "train.epochs",
    "train.batch_size",
    "train.nonfinite",
    "train.progress",
    "eval.ks",
    "eval.protocols",
    "data.source",
    "data.columns",
    "data.synthetic.num_users",
    "mesh.data",
    "model.name",
    "model.gru4rec.layers",
    "optim.learning_rate",
    "loss.kind",
    "train",
    "x.y",
]


@FAST
@given(
    sets=st.lists(
        st.tuples(
            st.sampled_from(SECTION_KEYS) | st.text(max_size=8),
            st.sampled_from(["=", "", "=="]),
            st.sampled_from(NASTY) | st.text(max_size=8) | st.integers().map(str),
        ).map("".join),
        max_size=4,
    )
)
def test_config_random_overrides(tmp_path, sets):
    _load(tmp_path, "train:\n  epochs: 1\n", sets)


# --- command line ---------------------------------------------------------------------------

WORDS = [
    "train",
    "evaluate",
    "recommend",
    "data",
    "stats",
    "export",
    "embed",
    "bench",
    "--workdir",
    "--set",
    "--force",
    "--split",
    "valid",
    "test",
    "--k",
    "--out",
    "--format",
    "-h",
    "--help",
    "train.epochs=1",
    "x=1",
    "w",
    "c.yaml",
    "-1",
    "0",
    "--",
    "-",
    "sasrec",
    "nope",
]


class _Accepted(Exception):
    """Raised instead of training: the arguments were accepted."""


@settings(FAST, max_examples=100)
@given(argv=st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=6))
def test_cli_random_argv(tmp_path, monkeypatch, argv):
    from jaxrec import cli, trainer

    def accept(*a, **k):
        raise _Accepted()

    from jaxrec.bench import suites as bench

    monkeypatch.setattr(trainer, "train_and_evaluate", accept)
    monkeypatch.setattr(trainer, "prepare", accept)
    monkeypatch.setattr(bench, "run_suite", accept)  # `bench` would run the whole suite
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse: usage error → 2, --help → 0
            code = e.code
            assert code == 0 or "usage:" in err.getvalue()
        except _Accepted:
            return
    assert code in (0, 2), code
    if code == 2:
        assert "error" in err.getvalue() and "Traceback" not in err.getvalue()
    assert os.getcwd() == str(tmp_path)


# --- the README's table: reader x kind of corruption -> outcomes ------------------------------


def _valid_binary(fmt: str) -> bytes:
    if fmt == "npy-pairs":
        return _npy_bytes(np.array([[1, 10], [1, 11], [2, 10]], dtype=np.int64))
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"user": ["1", "1", "2"], "item": [10, 11, 10]}), buf)
    return buf.getvalue()


def _corrupt(kind: str, fmt: str, rng) -> bytes:
    if fmt in ("npy-pairs", "parquet"):
        raw = _valid_binary(fmt)
        text = ""
    else:
        text = VALID[fmt]
        raw = text.encode()
    i = rng.randrange(len(raw))
    lines = text.split("\n")
    if kind == "truncated":
        return raw[:i]
    if kind == "garbled bytes":
        return _garble(raw, rng)
    if kind == "nasty token":
        return (text[:i] + rng.choice(NASTY) + text[i:]).encode("utf-8", "surrogateescape")
    if kind == "field dropped":
        j = rng.randrange(len(lines) - 1)
        fields = re.split(r"(::|\t|,| )", lines[j])  # fields and their separators
        k = rng.randrange(0, len(fields), 2)
        lines[j] = "".join(fields[:k] + fields[k + 2 :])
        return "\n".join(lines).encode()
    if kind == "non-finite/huge number":
        tok = rng.choice(["nan", "inf", "-inf", "1e400", "9" * 25, "-5"])
        lines[-2] = re.sub(r"[0-9]+$", tok, lines[-2])
        return "\n".join(lines).encode()
    if kind == "binary (NUL / not UTF-8)":
        return raw[:i] + rng.choice([b"\x00", b"\xff\xfe", b"\xc3("]) + raw[i:]
    if kind == "header only / empty":
        return rng.choice([b"", b"\n\n", (lines[0] + "\n").encode()])
    if kind == "wrong dtype/shape/pickle":
        return _wrong_npy(rng)
    raise ValueError(kind)


def _garble(raw: bytes, rng) -> bytes:
    """`raw` with one to four bytes overwritten at random."""
    out = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _wrong_npy(rng) -> bytes:
    """A well-formed .npy file of the wrong dtype or shape, or an object array (pickle)."""
    bad = [
        np.ones((3, 2), np.float32),
        np.ones((3, 3), np.int64),
        np.ones((0, 2), np.int64),
        np.array(["a", "b"]),
    ]
    if rng.random() < 0.25:  # an object array: only np.save's pickle can write it
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return buf.getvalue()
    return _npy_bytes(rng.choice(bad))


TEXT_KINDS = (
    "truncated",
    "garbled bytes",
    "nasty token",
    "field dropped",
    "non-finite/huge number",
    "binary (NUL / not UTF-8)",
    "header only / empty",
)
KINDS = {
    **{fmt: TEXT_KINDS for fmt in TEXT_FORMATS},
    "npy-pairs": ("truncated", "garbled bytes", "wrong dtype/shape/pickle"),
    "parquet": ("truncated", "garbled bytes"),
}


def corruption_table(n: int = 200, seed: int = 0, tmp: Path | None = None) -> list[tuple]:
    """(reader, corruption, n, valid result, DataError, ConfigError, other) per cell."""
    import random
    import tempfile

    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp() if tmp is None else tmp)
    rows = []
    for fmt, kinds in KINDS.items():
        for kind in kinds:
            counts = {"ok": 0, "error: DataError": 0, "error: ConfigError": 0, "other": 0}
            for _ in range(n):
                suffix = {"npy-pairs": ".npy", "parquet": ".parquet"}.get(fmt, ".txt")
                path = _write(tmp, _corrupt(kind, fmt, rng), SUFFIX.get(fmt, suffix))
                try:
                    counts[outcome(path, fmt)] += 1
                except Exception:  # the property is broken: counted, and the test below fails
                    counts["other"] += 1
            rows.append((fmt, kind, n, *counts.values()))
    return rows


def test_corruption_table_has_no_crash(tmp_path):
    rows = corruption_table(n=6, tmp=tmp_path)
    assert all(other == 0 for *_, other in rows), [r for r in rows if r[-1]]
    assert all(sum(r[3:]) == r[2] for r in rows)


if __name__ == "__main__":  # python tests/test_fuzz.py → the README's markdown table
    print("| reader | corruption | examples | valid result | DataError | ConfigError | other |")
    print("|---|---|---|---|---|---|---|")
    for r in corruption_table():
        print("| " + " | ".join(map(str, r)) + " |")


def test_parquet_with_bytes_that_are_not_utf8_in_a_string_column(tmp_path):
    """Found by fuzzing: pyarrow raised ArrowException from `to_numpy` (now a DataError)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "x.parquet"
    table = pa.table({"user": ["uuuu", "vvvv"], "item": [1, 2]})
    pq.write_table(table, path, compression="none", write_statistics=False)
    path.write_bytes(path.read_bytes().replace(b"uuuu", b"\xff\xfe\xff\xfe"))
    with pytest.raises(DataError, match="column 'user' cannot be read") as e:
        formats.read_interactions(path, "parquet")
    assert e.value.path == str(path) and e.value.field == "user"
