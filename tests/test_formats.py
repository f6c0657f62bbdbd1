"""Readers in jaxrec.data.formats: hand-computed cases, every bad-input error, fuzzing, real data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxrec.data.formats import FORMATS, detect_format, read_interactions
from jaxrec.data.interactions import Interactions
from jaxrec.data.splits import leave_one_out
from jaxrec.errors import ConfigError, DataError

DATA = Path(os.environ.get("JAXREC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def rows(data: Interactions) -> list[tuple]:
    """Events as (raw user, raw item, rating, timestamp) in stored order."""
    r = [None] * data.num_events if data.ratings is None else data.ratings.tolist()
    t = [None] * data.num_events if data.timestamps is None else data.timestamps.tolist()
    users = data.user_vocab[data.user_ids].tolist()
    return list(zip(users, data.item_vocab[data.item_ids].tolist(), r, t, strict=True))


# ---------------------------------------------------------------- hand-computed cases

UDATA = "1\t10\t5\t100\n2\t10\t3\t50\n1\t20\t4\t90\n"
EXPECTED_ML = [("1", "20", 4.0, 90.0), ("1", "10", 5.0, 100.0), ("2", "10", 3.0, 50.0)]


def test_movielens_100k(tmp_path):
    data = read_interactions(write(tmp_path, "u.data", UDATA))
    assert rows(data) == EXPECTED_ML
    assert data.user_vocab.tolist() == ["1", "2"] and data.item_vocab.tolist() == ["10", "20"]
    assert data.user_ids.tolist() == [0, 0, 1] and data.item_ids.tolist() == [1, 0, 0]


def test_movielens_slow_path_same_result(tmp_path):
    # a rating written "4.0" leaves the integer fast path; the answer must not change
    data = read_interactions(write(tmp_path, "u.data", UDATA.replace("\t4\t", "\t4.0\t")))
    assert rows(data) == EXPECTED_ML


def test_movielens_1m_crlf_blank_lines_and_bom(tmp_path):
    text = "\ufeff" + UDATA.replace("\t", "::").replace("\n", "\r\n") + "\r\n\r\n"
    data = read_interactions(write(tmp_path, "ratings.dat", text))
    assert rows(data) == EXPECTED_ML


def test_integer_ids_are_canonical(tmp_path):
    data = read_interactions(write(tmp_path, "v.txt", "007 3\n7 +4\n"), "sasrec")
    assert data.user_vocab.tolist() == ["7"] and data.item_vocab.tolist() == ["3", "4"]


def test_sasrec_keeps_file_order(tmp_path):
    data = read_interactions(write(tmp_path, "Video.txt", "3 7\n3 5\n1 7\n3 9\n"))
    assert rows(data) == [("1", "7", None, 3.0), ("3", "7", None, 1.0)] + [
        ("3", "5", None, 2.0),
        ("3", "9", None, 4.0),
    ]
    assert data.sequences().row(1).tolist() == [1, 0, 2]  # items 7, 5, 9 in file order


def test_sequence_lines(tmp_path):
    data = read_interactions(write(tmp_path, "Beauty.txt", "2 6 5\n1 5 6 7\n"))
    assert rows(data) == [
        ("1", "5", None, 0.0),
        ("1", "6", None, 1.0),
        ("1", "7", None, 2.0),
        ("2", "6", None, 0.0),
        ("2", "5", None, 1.0),
    ]


def test_sequence_lines_slow_path(tmp_path):
    path = write(tmp_path, "s.txt", "2\t6 5\r\n\u00a0\n1 5 6 7\n")  # NBSP: not the fast path
    assert read_interactions(path, "sequence-lines").num_events == 5


RECBOLE = "user_id:token\titem_id:token\trating:float\ttimestamp:float\nb\tx\t4\t2\na\ty\t3.5\t1\n"


def test_recbole(tmp_path):
    data = read_interactions(write(tmp_path, "d.inter", RECBOLE))
    assert rows(data) == [("a", "y", 3.5, 1.0), ("b", "x", 4.0, 2.0)]


def test_recbole_column_override_and_extra_columns(tmp_path):
    text = "s:token\titem_id:token\treview:token_seq\nu1\ti1\tgood game\nu1\ti2\tmeh\n"
    data = read_interactions(write(tmp_path, "d.inter", text), columns={"user": "s"})
    assert rows(data) == [("u1", "i1", None, None), ("u1", "i2", None, None)]


def test_csv_header_guess_and_dates(tmp_path):
    text = "userId,movieId,rating,timestamp\n5,b,2.5,2016-01-02\n5,a,1,2016-01-01T12:00\n"
    data = read_interactions(write(tmp_path, "r.csv", text))
    day = 86400.0 * 16801  # 2016-01-01
    assert rows(data) == [("5", "a", 1.0, day + 43200), ("5", "b", 2.5, day + 86400)]


def test_csv_quoted_and_mapping(tmp_path):
    text = 'sid;who;what;when\n1;"A; B";"x""y";3\n2;C;z;1\n'
    columns = {"user": "who", "item": "what", "timestamp": "when"}
    data = read_interactions(write(tmp_path, "views.txt", text), columns=columns)
    assert rows(data) == [("A; B", 'x"y', None, 3.0), ("C", "z", None, 1.0)]


def test_csv_positional_whitespace_crlf(tmp_path):
    # CFGAN's split: "user item rating", spaces, CRLF, no header
    path = write(tmp_path, "ML100K.train", "0 0 3.0\r\n1 1 5.0\r\n0 2 4.0\r\n")
    data = read_interactions(path, "csv", columns={"user": 0, "item": 1, "rating": 2})
    assert rows(data) == [("0", "0", 3.0, None), ("0", "2", 4.0, None), ("1", "1", 5.0, None)]
    # A YAML config delivers positions as strings ("0"): they are positions too.
    strings = read_interactions(path, "csv", columns={"user": "0", "item": "1", "rating": "2"})
    assert rows(strings) == rows(data)


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "u": pa.array(["b", "a", "b"]).dictionary_encode(),
            "i": [1, 2, 3],
            "t": pa.array([20_000, 10_000, 5_000], pa.timestamp("ms")),
            "score": [1.0, 2.0, 3.0],
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    cols = {"user": "u", "item": "i", "timestamp": "t", "rating": "score"}
    data = read_interactions(tmp_path / "x.parquet", columns=cols)
    assert rows(data) == [("a", "2", 2.0, 10.0), ("b", "3", 3.0, 5.0), ("b", "1", 1.0, 20.0)]


def test_npy_pairs(tmp_path):
    np.save(tmp_path / "train_list.npy", np.array([[1, 5], [0, 3], [1, 4]], dtype=np.int64))
    data = read_interactions(tmp_path / "train_list.npy")
    assert rows(data) == [("0", "3", None, None), ("1", "5", None, None), ("1", "4", None, None)]


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("u.data", UDATA, "movielens-100k"),
        ("other.tsv", "a\tb\n", "csv"),
        ("x.txt", UDATA, "movielens-100k"),
        ("x.txt", "1::2::3::4\n", "movielens-1m"),
        ("x.txt", "user_id:token\titem_id:token\n", "recbole"),
        ("x.txt", "1 2\n1 3\n2 2\n", "sasrec"),
        ("x.txt", "1 2 3\n2 3\n", "sequence-lines"),
        ("x", b"\x93NUMPY\x01\x00", "npy-pairs"),
    ],
)
def test_detect_format(tmp_path, name, content, expected):
    assert detect_format(write(tmp_path, name, content)) == expected


def test_detect_format_refuses_to_guess(tmp_path):
    path = write(tmp_path, "split.txt", "0\t0\t5\n0\t1\t3\n")  # IRGAN: 3 columns
    with pytest.raises(DataError, match="cannot tell the format.*3 fields"):
        read_interactions(path)


def test_argument_errors(tmp_path):
    path = write(tmp_path, "u.data", UDATA)
    with pytest.raises(ConfigError, match="did you mean 'sasrec'"):
        read_interactions(path, "sasrek")
    with pytest.raises(ConfigError, match="fixed columns"):
        read_interactions(path, "movielens-100k", columns={"user": "a"})
    with pytest.raises(ConfigError, match="all header names or all"):
        read_interactions(path, "csv", columns={"user": 0, "item": "b"})
    assert len(FORMATS) == 8


# ---------------------------------------------------------------- bad input → DataError


BAD = [  # (file name, format, content, line, field, words in the message)
    ("u.data", None, "1\t2\t3\t4\n1\t2\t3\n", 2, "timestamp", "expected 4 fields"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\t3\t4\t5\n", 2, "timestamp", "found 5"),
    ("u.data", None, "1\t2\t3\t4\n\nx1\t2\t3\t4\n", 3, "user", "expected an integer"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\tgood\t4\n", 2, "rating", "expected a number"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\t3\t4pm\n", 2, "timestamp", "expected a number"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\tNaN\t4\n", 2, "rating", "not a finite number"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\t3\t-inf\n", 2, "timestamp", "not a finite number"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\t1e999\t4\n", 2, "rating", "not a finite number"),
    ("u.data", None, "1\t2\t3\t4\r\nuser\titem\trating\ttime\r\n", 2, "user", "header"),
    ("u.data", None, "1\t2\t3\t4\n1\t\t3\t4\n", 2, "item", "expected an integer"),
    ("u.data", None, "1\t2\t3\t4\n1 2\t3\t4\t5\n", 2, "user", "expected an integer"),
    ("u.data", None, "1\t2\t3\t4\n12345678901234567890\t2\t3\t4\n", 2, "user", "integer"),
    ("u.data", None, "1\t2\t3\t4\n1\t2\t3\t4\r5\n", 2, "timestamp", "expected a number"),
    ("ratings.dat", None, "1::2::3::4\n1::2:::3::4\n", 2, "rating", "expected a number"),
    ("v.txt", "sasrec", "1 2\n1 2 3\n", 2, "item", "expected 2 fields"),
    ("v.txt", "sasrec", "1 2\n1\n", 2, "item", "missing"),
    ("v.txt", "sasrec", "1 2\nu 2\n", 2, "user", "expected an integer"),
    ("v.txt", "sasrec", "1 2\n1 2.5\n", 2, "item", "expected an integer"),
    ("v.txt", "sasrec", "0 0\n0 0\n0 0.0\n", 3, "item", "expected an integer"),
    ("v.txt", "sasrec", "1 2\n1 -\n", 2, "item", "expected an integer"),
    ("v.txt", "sasrec", "1 2\n1 ٣\n", 2, "item", "expected an integer"),
    ("b.txt", "sequence-lines", "1 2 3\n\n2\n", 3, "items", "user with no events"),
    ("b.txt", "sequence-lines", "1 2 3\n2 4\n1 5\n", 3, "user", "appears again (first on line 1)"),
    ("b.txt", "sequence-lines", "1 2 3\n2 4 x\n", 2, "item", "expected an integer"),
    ("d.inter", None, RECBOLE + "c\tz\t\t3\n", 4, "rating", "expected a number"),
    ("d.inter", None, RECBOLE + "c\tz\t5\n", 4, "timestamp", "expected 4 fields"),
    ("d.inter", None, RECBOLE + "c\tz\tinf\t1\n", 4, "rating", "not a finite number"),
    ("d.inter", None, RECBOLE + "\tz\t5\t1\n", 4, "user", "empty id"),
    ("d.inter", None, "user_id\titem_id:token\n", 1, "user_id", "look like 'user_id:token'"),
    ("d.inter", None, "user_id:float\titem_id:token\n1\t2\n", 1, "user_id", "must be token"),
    ("d.inter", None, "a:token\titem_id:token\n1\t2\n", 1, "user", "available columns: a"),
    ("r.csv", None, "userId,item\n1,2\n1\n", 3, "item", "expected 2 fields"),
    ("r.csv", None, "userId,item,rating\n1,2,3\n1,2,x\n", 3, "rating", "expected a number"),
    ("r.csv", None, "user,item,time\n1,2,2016-01-01\n1,2,2016-13-01\n", 3, "timestamp", "date"),
    ("r.csv", None, 'user,item\n1,2\n1,"2\n', 3, None, "CSV syntax error"),
    ("r.csv", None, "user,item\n1,2\nuser,item\n", 3, None, "header line appears again"),
    ("r.csv", None, "uid,what\n1,2\n", 1, "item", "no item column"),
    ("x.txt", "sasrec", b"1 2\n1 \xff\n", 2, None, "not UTF-8"),
    ("x.txt", "sasrec", b"1 2\n1 2\n\x001 2\n", 3, None, "NUL byte"),
]


@pytest.mark.parametrize("name, fmt, content, line, field, words", BAD)
def test_bad_input(tmp_path, name, fmt, content, line, field, words):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_interactions(path, fmt)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}:"), msg
    assert words in msg
    if field is not None:
        assert f"field '{field}'" in msg and info.value.field == field
    assert info.value.line == line and info.value.path == str(path)


def test_missing_mapped_column_lists_available(tmp_path):
    path = write(tmp_path, "r.csv", "user,item,rating\n1,2,3\n")
    with pytest.raises(DataError) as info:
        read_interactions(path, columns={"user": "user", "item": "itme"})
    msg = str(info.value)
    assert "'itme' not found (did you mean 'item'?)" in msg
    assert "available columns: user, item, rating" in msg and f"{path}:1:" in msg


def test_missing_parquet_column_lists_available(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"u": [1], "i": [2]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"field 'item'.*'item' not found; available columns: u, i"):
        read_interactions(tmp_path / "x.parquet", columns={"user": "u", "item": "item"})


def test_parquet_null_and_nan_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user": [1, None], "item": [2, 3]}), tmp_path / "a.parquet")
    with pytest.raises(DataError, match=r"a.parquet:2: field 'user': missing value"):
        read_interactions(tmp_path / "a.parquet")
    table = pa.table({"user": [1, 1], "item": [2, 3], "rating": [1.0, float("nan")]})
    pq.write_table(table, tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b.parquet:2: field 'rating': NaN"):
        read_interactions(tmp_path / "b.parquet")


@pytest.mark.parametrize(
    "array, words",
    [
        (np.array([[1.0, 2.0]]), "field 'dtype'"),
        (np.array([[1, 2, 3]]), "field 'shape'"),
        (np.zeros((0, 2), dtype=np.int64), "empty"),
        (np.array([{"a": 1}], dtype=object), "not a readable .npy"),
    ],
)
def test_bad_npy(tmp_path, array, words):
    np.save(tmp_path / "x.npy", array, allow_pickle=True)
    with pytest.raises(DataError, match=words) as info:
        read_interactions(tmp_path / "x.npy")
    assert str(tmp_path / "x.npy") in str(info.value)


@pytest.mark.parametrize("fmt", [None, *FORMATS])
def test_missing_and_empty_files(tmp_path, fmt):
    columns = {"user": "u", "item": "i"} if fmt in ("csv", "parquet") else None
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=f"{missing}: file not found"):
        read_interactions(missing, fmt, columns=columns)
    with pytest.raises(DataError, match="is a directory"):
        read_interactions(tmp_path, fmt, columns=columns)
    empty = write(tmp_path, "empty.txt", "\n  \r\n")
    with pytest.raises(DataError, match=f"{empty}.*(empty|not a readable)"):
        read_interactions(empty, fmt, columns=columns)


# ---------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOKENS = ["1", "22", "-3", "+4", "0.5", "1e3", "nan", "inf", "x", "user", "", '"', "٣", "::"]
SEPS = [" ", "\t", "  ", ",", ";", "::", "\r", "\r\n", "\n", "\n\n"]
HEADERS = ["", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n", "user,item\n"]


def check_only_data_errors(path: Path, fmt: str | None) -> None:
    columns = {"user": "user", "item": "item"} if fmt == "csv" else None
    try:
        data = read_interactions(path, fmt, columns=columns)
    except DataError:
        return
    assert data.num_events > 0 and len(data.user_ids) == len(data.item_ids)
    assert data.user_ids.max() < data.num_users and data.item_ids.max() < data.num_items


@FUZZ
@given(content=st.binary(max_size=300), fmt=st.sampled_from([None, *FORMATS]))
def test_fuzz_random_bytes(tmp_path, content, fmt):
    check_only_data_errors(write(tmp_path, "fuzz.bin", content), fmt)


@FUZZ
@given(
    head=st.sampled_from(HEADERS),
    parts=st.lists(st.sampled_from(TOKENS + SEPS), max_size=40),
    fmt=st.sampled_from([None, "movielens-100k", "movielens-1m", "sasrec", "sequence-lines"]),
)
def test_fuzz_token_soup(tmp_path, head, parts, fmt):
    check_only_data_errors(write(tmp_path, "fuzz.txt", head + "".join(parts)), fmt)


@FUZZ
@given(
    events=st.lists(st.tuples(*[st.integers(-(10**12), 10**12)] * 4), min_size=1, max_size=30),
    crlf=st.booleans(),
)
def test_fuzz_fast_path_matches_csv_reader(tmp_path, events, crlf):
    # u.data (integer fast path) and the same bytes through the generic csv reader agree
    end = "\r\n" if crlf else "\n"
    text = "".join("\t".join(map(str, e)) + end for e in events)
    path = write(tmp_path, "u.data", text)
    fast = read_interactions(path)
    cols = {"user": 0, "item": 1, "rating": 2, "timestamp": 3}
    assert rows(fast) == rows(read_interactions(path, "csv", columns=cols, sep="\t"))


# ---------------------------------------------------------------- real data (shared/data)

needs_data = pytest.mark.skipif(
    not (DATA / "ml-100k" / "u.data").exists(),
    reason=f"real data sets not found at {DATA} (set JAXREC_DATA_DIR)",
)


@needs_data
def test_games_sasrec_counts_speed_and_leave_one_out():
    path = DATA / "amazon-games-sasrec" / "Video.txt"
    start = time.perf_counter()
    data = read_interactions(path)
    elapsed = time.perf_counter() - start
    assert (data.num_users, data.num_items, data.num_events) == (31013, 23715, 287107)
    assert elapsed < 10.0, f"{elapsed:.2f} s"  # about 0.2 s here; slack for a loaded CI box
    split = leave_one_out(data)
    lengths = np.bincount(data.user_ids, minlength=data.num_users)
    np.testing.assert_array_equal(split.eval_users("test"), np.flatnonzero(lengths >= 3))
    np.testing.assert_array_equal(split.eval_users("valid"), np.flatnonzero(lengths >= 3))


@needs_data
def test_movielens_100k_and_recbole_copy_agree():
    start = time.perf_counter()
    udata = read_interactions(DATA / "ml-100k" / "u.data")
    assert time.perf_counter() - start < 10.0
    assert (udata.num_users, udata.num_items, udata.num_events) == (943, 1682, 100000)
    inter = read_interactions(DATA / "ml-100k-recbole" / "ml-100k.inter")

    def table(d: Interactions) -> np.ndarray:  # one row per event, raw ids as numbers, sorted
        u, i = (
            v.astype(np.int64)[ids]
            for v, ids in ((d.user_vocab, d.user_ids), (d.item_vocab, d.item_ids))
        )
        t = np.stack([u, i, d.ratings, d.timestamps], axis=1)
        return t[np.lexsort(t.T[::-1])]

    np.testing.assert_array_equal(table(udata), table(inter))


@needs_data
@pytest.mark.parametrize(
    "rel, fmt, columns, expected",
    [
        ("amazon-beauty-s3rec/Beauty.txt", None, None, (22363, 12101, 198502)),
        ("amazon-beauty-bert4rec/beauty.txt", None, None, (40226, 54542, 353962)),
        ("ml-1m-diffrec-clean/train_list.npy", None, None, (5949, 2810, 403277)),
        (
            "diginetica-sample-srgnn/sample_train-item-views.csv",
            None,
            {"user": "session_id", "item": "item_id", "timestamp": "eventdate"},
            (2986, 7139, 12391),
        ),
        (
            "ml-100k-irgan-split/movielens-100k-train.txt",
            "csv",
            {"user": 0, "item": 1, "rating": 2},
            (943, 1650, 80000),
        ),
        ("ml-100k-cfgan-split/ML100K.test", "csv", {"user": 0, "item": 1}, (943, 1387, 19963)),
    ],
)
def test_other_real_files(rel, fmt, columns, expected):
    data = read_interactions(DATA / rel, fmt, columns=columns)
    assert (data.num_users, data.num_items, data.num_events) == expected
