"""Readers that turn interaction files into `Interactions`; every error names file, line, field.

Formats (`FORMATS`), detected from the file name, then the content, when `format` is None:

  movielens-100k  `u.data`: `user TAB item TAB rating TAB timestamp` (GroupLens ML-100K)
  movielens-1m    `ratings.dat`: `user::item::rating::timestamp`
  sasrec          `user item` per line, chronological per user (SASRec, Kang & McAuley 2018);
                  timestamp = line number, so file order is event order
  sequence-lines  `user item1 item2 ...`, one user per line (S3-Rec, Zhou et al. 2020);
                  timestamp = 0-based position in the line
  recbole         RecBole atomic `.inter`: TAB-separated with a typed header `user_id:token ...`
  csv             delimited text with a column mapping (header names, or 0-based positions
                  for a file without header)
  parquet         columns picked by a column mapping
  npy-pairs       `.npy` integer array [N, 2] of (user, item) (DiffRec lists); no pickle

Ids: MovieLens, SASRec, sequence-lines and npy-pairs ids must be integers, as the reference
loaders read them (`int(u)`). Being strict there turns a stray header or a corrupted line into
an error instead of a new user; the raw id kept is the canonical decimal (`007` → `7`).
RecBole `token` ids and CSV/Parquet ids are any non-empty string. Ratings and timestamps must
be finite numbers (CSV/Parquet timestamps may also be ISO-8601 dates, kept as seconds since
the epoch). Blank lines are skipped; CRLF endings and a UTF-8 BOM are accepted. For Parquet
and `.npy` the "line" of an error is the 1-based row.

Speed: files of plain integers (u.data, ratings.dat, SASRec, sequence lines) are parsed from
the bytes by numpy alone (`_int_tokens`). Anything else is split with C-level `str` methods,
and each column is checked with one regex and converted by numpy. Only when that fails is the
column searched, by halving, for the first bad token, to name its line.
"""

from __future__ import annotations

import csv
import difflib
import gc
import io
import itertools
import re
from operator import itemgetter
from pathlib import Path
from typing import NoReturn

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import ConfigError, DataError

FORMATS = (
    "movielens-100k",
    "movielens-1m",
    "sasrec",
    "sequence-lines",
    "recbole",
    "csv",
    "parquet",
    "npy-pairs",
)
ROLES = ("user", "item", "rating", "timestamp")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?")
_CHARS = {  # what a column may hold; ASCII, as numpy's int() parse also takes '1_000' and '٣'
    "int": re.compile(r"[0-9+\- \t\n]*"),
    "float": re.compile(r"[0-9+\-.eE \t\n]*"),
    "date": re.compile(r"[0-9\-T: \n]*"),
}
_DTYPE = {"int": np.int64, "float": np.float64, "date": "datetime64[s]"}
_WANT = {"int": "an integer", "float": "a number", "date": "an ISO-8601 date"}
_GUESS = {  # lower-cased header names tried when no column mapping is given
    "user": ("user", "user_id", "userid", "uid"),
    "item": ("item", "item_id", "itemid", "iid", "movie_id", "movieid"),
    "rating": ("rating", "score"),
    "timestamp": ("timestamp", "time", "ts"),
}


def _fail(message: str, path, line=None, field: str | None = None) -> NoReturn:
    raise DataError(message, path=str(path), line=None if line is None else int(line), field=field)


def _check_file(path) -> str:
    if not Path(path).exists():
        _fail("file not found; check the path", path)
    if Path(path).is_dir():
        _fail("is a directory; give the data file inside it", path)
    return str(path)


def _read_bytes(path, limit: int = -1) -> bytes:
    try:
        with open(_check_file(path), "rb") as f:
            return f.read(limit)
    except OSError as e:
        _fail(f"cannot read the file: {e.strerror}", path)


def _decode(raw: bytes, path) -> str:
    nul = raw.find(b"\x00")  # numpy drops trailing NULs from strings: refuse them up front
    if nul >= 0:
        _fail("NUL byte: this is a binary file, not text", path, raw.count(b"\n", 0, nul) + 1)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        _fail("not UTF-8 text", path, raw.count(b"\n", 0, e.start) + 1)
    if not text.strip():
        _fail("empty file: no events", path)
    return text


def _read_text(path) -> str:
    return _decode(_read_bytes(path), path)


class _Table:
    """The non-blank lines of a text file split into fields. rows: R lists; lineno: int [R]."""

    def __init__(self, path, rows: list[list[str]], lineno: np.ndarray):
        self.path, self.rows, self.lineno = str(path), rows, lineno
        if not rows:
            _fail("no events in the file", path)

    @classmethod
    def split(cls, path, text: str, sep: str | None) -> _Table:
        lines = text.replace("\r\n", "\n").split("\n")
        keep = np.fromiter(map(bool, map(str.strip, lines)), dtype=bool, count=len(lines))
        paused = gc.isenabled()
        gc.disable()  # a million new lists would set off many useless cyclic-GC passes
        try:
            rows = list(map(str.split, itertools.compress(lines, keep), itertools.repeat(sep)))
        finally:
            if paused:
                gc.enable()
        return cls(path, rows, np.flatnonzero(keep) + 1)

    def counts(self) -> np.ndarray:
        return np.fromiter(map(len, self.rows), dtype=np.int64, count=len(self.rows))

    def columns(self, names: tuple[str, ...]) -> list[list[str]]:
        """Each column as a list of strings; every row must have exactly len(names) fields."""
        n, want = self.counts(), len(names)
        bad = np.flatnonzero(n != want)
        if len(bad):
            i = bad[0]
            what = "missing" if n[i] < want else "extra text after it"
            msg = f"{what}: expected {want} fields ({' '.join(names)}), found {n[i]}"
            _fail(msg, self.path, self.lineno[i], names[min(n[i], want - 1)])
        return [list(map(itemgetter(j), self.rows)) for j in range(want)]

    def body(self) -> _Table:
        """The rows after the header row 0, which must not appear again (files concatenated?)."""
        if self.rows[0] in self.rows[1:]:
            line = self.lineno[self.rows.index(self.rows[0], 1)]
            _fail("the header line appears again inside the data", self.path, line)
        return _Table(self.path, self.rows[1:], self.lineno[1:])


def _parse(col: list[str], kind: str, path: str, lineno: np.ndarray, field: str) -> np.ndarray:
    """Strings → int64 [N] ('int'), finite float64 [N] ('float') or epoch seconds ('date').

    lineno[i] is the line of col[i]. One regex checks the characters of the whole column and
    numpy converts it (rejecting '1-2', '1e', month 13, overflow...). When that fails, halving
    the column (the first half that fails holds the first bad token) names the bad line in
    about two more passes, where a token-by-token scan would take seconds on 1M lines.
    """
    out = _convert(col, kind)
    if out is None:
        lo, hi = 0, len(col)  # col[lo:hi] holds the first bad token
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _convert(col[lo:mid], kind) is None else (mid, hi)
        i, tok = lo, col[lo].strip()
        if tok.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            _fail(f"{tok!r} is not a finite number (no NaN or infinity)", path, lineno[i], field)
        hint = " (a header or text line inside the data?)" if tok[:1].isalpha() else ""
        _fail(f"expected {_WANT[kind]}, found {tok!r}{hint}", path, lineno[i], field)
    if kind == "date":
        return out.astype(np.int64).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(out))  # overflow such as 1e400
    if len(bad):
        _fail(f"{col[bad[0]].strip()!r} is not a finite number", path, lineno[bad[0]], field)
    return out


def _convert(col: list[str], kind: str) -> np.ndarray | None:
    """col as int64 / float64 / datetime64[s] [N], or None if a token is not of that kind."""
    try:
        out = np.array(col).astype(_DTYPE[kind]) if _CHARS[kind].fullmatch("\n".join(col)) else None
    except (ValueError, OverflowError):
        return None
    return None if out is None or (kind == "date" and np.isnat(out).any()) else out  # '' → NaT


def _ids(col, path: str, lineno: np.ndarray, field: str) -> np.ndarray:
    """Free-form string ids → str array [N]; surrounding spaces are dropped, empty is an error."""
    arr = np.char.strip(np.array(col, dtype=str))
    bad = np.flatnonzero(arr == "")
    if len(bad):
        _fail("empty id", path, lineno[bad[0]], field)
    return arr


_BYTE = np.zeros(256, dtype=np.int8)  # byte classes of the fast path; 0 = anything else
_BYTE[np.frombuffer(b"0123456789", np.uint8)] = 1
_BYTE[np.frombuffer(b"+-", np.uint8)] = 2
_BYTE[[32, 9, 13, 10]] = [3, 4, 5, 6]  # space, tab, CR, LF
_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _int_tokens(raw: bytes, tabs: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Fast path for text made only of ASCII integers → (values int64 [T], counts [R], lineno [R]).

    counts[r] is the number of integers on the r-th non-blank line, lineno its 1-based line.
    tabs=True: fields are separated by exactly one TAB; else by runs of spaces and tabs.
    Returns None when the bytes hold anything else; the slow path then finds the bad line.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    cls = _BYTE[buf]
    if not len(buf) or (cls == 0).any() or (tabs and (cls == 3).any()):
        return None
    cr = np.flatnonzero(cls == 5)
    if len(cr) and (cr[-1] == len(buf) - 1 or (buf[cr + 1] != 10).any()):
        return None  # a CR that does not end a line
    edge = np.diff((cls == 1) | (cls == 2), prepend=False, append=False).nonzero()[0]
    starts, ends = edge[0::2], edge[1::2]  # integer t is buf[starts[t]:ends[t]]
    signed = cls[starts] == 2
    ndigits = ends - starts - signed
    if not len(starts) or (cls == 2).sum() != signed.sum() or ndigits.min() < 1:
        return None  # a sign inside a token, or a bare sign
    if ndigits.max() > 18:
        return None  # may not fit int64: the slow path says so with the line
    newlines = np.flatnonzero(cls == 6)
    counts = np.bincount(np.searchsorted(newlines, starts), minlength=len(newlines) + 1)
    if tabs:
        tab_line = np.searchsorted(newlines, np.flatnonzero(cls == 4))
        if (np.bincount(tab_line, minlength=len(counts)) != np.maximum(counts - 1, 0)).any():
            return None  # empty fields or a tab-only line
    digits = np.flatnonzero(cls == 1)  # in token order; value = Σ digit · 10^(places to end)
    terms = (buf[digits].astype(np.int64) - 48) * _POW10[np.repeat(ends - 1, ndigits) - digits]
    values = np.add.reduceat(terms, np.cumsum(ndigits) - ndigits)
    values[signed & (buf[starts] == 45)] *= -1
    keep = counts > 0
    return values, counts[keep], np.flatnonzero(keep) + 1


def read_movielens_100k(path) -> Interactions:
    """GroupLens `u.data`: `user TAB item TAB rating TAB timestamp`; ids are integers."""
    return _read_movielens(path, "\t")


def read_movielens_1m(path) -> Interactions:
    """GroupLens `ratings.dat`: `user::item::rating::timestamp`; ids are integers."""
    return _read_movielens(path, "::")


def _read_movielens(path, sep: str) -> Interactions:
    raw, p = _read_bytes(path), str(path)
    if sep == "\t" or b"\t" not in raw:
        fast = _int_tokens(raw.replace(b"::", b"\t"), tabs=True)
        if fast is not None and (fast[1] == 4).all():
            u, i, r, ts = fast[0].reshape(-1, 4).T
            return Interactions.from_raw(u, i, ts * 1.0, r * 1.0, source=p)
    t = _Table.split(path, _decode(raw, path), sep)
    kinds = ("int", "int", "float", "float")
    cols = zip(t.columns(ROLES), kinds, ROLES, strict=True)
    u, i, r, ts = (_parse(c, k, p, t.lineno, f) for c, k, f in cols)
    return Interactions.from_raw(u, i, ts, r, source=p)


def read_sasrec(path) -> Interactions:
    """SASRec `user item` lines (whitespace-separated integers); timestamp = line number."""
    raw, p = _read_bytes(path), str(path)
    fast = _int_tokens(raw, tabs=False)
    if fast is not None and (fast[1] == 2).all():
        return Interactions.from_raw(fast[0][0::2], fast[0][1::2], fast[2] * 1.0, source=p)
    t = _Table.split(path, _decode(raw, path), None)
    u, i = (
        _parse(c, "int", p, t.lineno, f)
        for c, f in zip(t.columns(ROLES[:2]), ROLES[:2], strict=True)
    )
    return Interactions.from_raw(u, i, t.lineno * 1.0, source=p)


def read_sequence_lines(path) -> Interactions:
    """`user item1 item2 ...` per line (integers); timestamp = position of the item in its line.

    A user may appear on one line only: a second line for the same user is an error, since
    joining the two would have to guess their order.
    """
    raw, p = _read_bytes(path), str(path)
    fast = _int_tokens(raw, tabs=False)
    if fast is not None and (fast[1] >= 2).all():
        values, counts, lineno = fast
        is_user = np.zeros(len(values), dtype=bool)
        is_user[np.cumsum(counts) - counts] = True
        users, items, n = values[is_user], values[~is_user], counts - 1
    else:
        t = _Table.split(path, _decode(raw, path), None)
        n, lineno = t.counts() - 1, t.lineno
        if (n == 0).any():
            _fail("user with no events: a user id and no items", p, lineno[n == 0][0], "items")
        users = _parse(list(map(itemgetter(0), t.rows)), "int", p, lineno, "user")
        tokens = [tok for r in t.rows for tok in r[1:]]
        items = _parse(tokens, "int", p, np.repeat(lineno, n), "item")
    order = np.argsort(users, kind="stable")
    dup = order[1:][users[order][1:] == users[order][:-1]]
    if len(dup):
        row = dup.min()
        first = lineno[np.argmax(users == users[row])]
        msg = f"user {users[row]} appears again (first on line {first}); give one line per user"
        _fail(msg, p, lineno[row], "user")
    pos = np.arange(len(items)) - np.repeat(np.cumsum(n) - n, n)
    return Interactions.from_raw(np.repeat(users, n), items, pos * 1.0, source=p)


def _resolve(columns, available: list[str], path: str, line) -> dict[str, str | int]:
    """Role → column (header name or 0-based position). Guesses common names when None."""
    if not columns:
        lower = {a.strip().lower(): a for a in available}
        found = {r: [lower[g] for g in _GUESS[r] if g in lower] for r in ROLES}
        columns = {r: names[0] for r, names in found.items() if names}
    if set(columns) - set(ROLES):
        unknown = sorted(set(columns) - set(ROLES))
        raise ConfigError(f"column mapping keys must be among {ROLES}, got {unknown}")
    listed = f"available columns: {', '.join(available)}"
    for role in ("user", "item"):
        if role not in columns:
            _fail(f"no {role} column; pass columns={{'{role}': ...}}; {listed}", path, line, role)
    for role, col in columns.items():
        if isinstance(col, int) and not 0 <= col < len(available):
            _fail(f"column position {col} out of range: {len(available)} fields", path, line, role)
        elif not isinstance(col, int) and col not in available:
            near = difflib.get_close_matches(str(col), available, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            _fail(f"column {col!r} not found{hint}; {listed}", path, line, role)
    return columns


def _from_columns(get: dict[str, list[str]], path: str, lineno: np.ndarray) -> Interactions:
    """Interactions from string columns per role (ids free-form; timestamps numbers or dates)."""
    num = {}
    for role in ("rating", "timestamp"):
        if role in get:
            col = [c.strip() for c in get[role]]  # numpy's date parser refuses spaces
            kind = "date" if role == "timestamp" and _DATE.fullmatch(col[0]) else "float"
            num[role] = _parse(col, kind, path, lineno, role)
    u, i = (_ids(get[r], path, lineno, r) for r in ("user", "item"))
    return Interactions.from_raw(u, i, num.get("timestamp"), num.get("rating"), source=path)


def _csv_rows(path: str, text: str, sep: str) -> _Table:
    """Quoted CSV through the csv module (slow path); keeps the first line of each record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    rows, lines, start = [], [], 1
    try:
        for row in reader:
            if any(f.strip() for f in row):
                rows.append(row), lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        _fail(f"CSV syntax error: {e}", path, reader.line_num)
    return _Table(path, rows, np.asarray(lines, dtype=np.int64))


def read_csv(path, columns: dict | None = None, sep: str | None = None) -> Interactions:
    """Delimited text. columns: {'user': c, 'item': c, 'rating'?: c, 'timestamp'?: c} where c
    is a header name, or a 0-based position for a file without header (all positions, then);
    None guesses from the header (user/user_id/userId, item/item_id/movieId, rating, timestamp).
    sep: the delimiter; None sniffs the first line for `,` TAB `;` `|`, else runs of whitespace.
    """
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise ConfigError(f"csv sep must be a non-empty string (None: sniff), got {sep!r}")
    # A YAML config gives every mapping value as a string, so "0" means position 0 as well.
    if columns and all(isinstance(c, str) and c.isdigit() for c in columns.values()):
        columns = {r: int(c) for r, c in columns.items()}
    kinds = {isinstance(c, int) for c in (columns or {}).values()}
    if len(kinds) > 1:
        raise ConfigError("csv columns: give all header names or all 0-based positions")
    text = _read_text(path)
    if sep is None:
        first = next(line for line in text.splitlines() if line.strip())
        sep = next((s for s in (",", "\t", ";", "|") if s in first), None)
    quoted = sep is not None and len(sep) == 1 and '"' in text
    t = _csv_rows(str(path), text, sep) if quoted else _Table.split(path, text, sep)
    if kinds == {True}:
        names = tuple(str(j) for j in range(len(t.rows[0])))
        cols = _resolve(columns, list(names), t.path, t.lineno[0])
        body = t
    else:
        names = tuple(h.strip() for h in t.rows[0])
        cols = {r: names.index(c) for r, c in _resolve(columns, names, t.path, t.lineno[0]).items()}
        body = t.body()
    values = body.columns(names)
    return _from_columns({r: values[c] for r, c in cols.items()}, t.path, body.lineno)


def read_recbole(path, columns: dict | None = None) -> Interactions:
    """RecBole atomic `.inter`: TAB-separated, header `name:type` (token, token_seq, float,
    float_seq). Columns default to RecBole's user_id, item_id, rating, timestamp; `columns`
    overrides them (e.g. {'user': 'session_id'}). Ids must be `token`, rating/timestamp `float`.
    """
    t = _Table.split(path, _read_text(path), "\t")
    header = [h.strip().rpartition(":") for h in t.rows[0]]
    names, types = tuple(h[0] for h in header), [h[2] for h in header]
    for h, (name, _, typ) in zip(t.rows[0], header, strict=True):
        if typ not in ("token", "token_seq", "float", "float_seq") or not name:
            msg = f"RecBole header fields look like 'user_id:token', found {h!r}"
            _fail(msg, t.path, t.lineno[0], h)
        if names.count(name) > 1:
            _fail(f"column {name!r} appears twice in the header", t.path, t.lineno[0], name)
    defaults = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
    wanted = {r: c for r, c in defaults.items() if r in ("user", "item") or c in names}
    cols = _resolve({**wanted, **(columns or {})}, list(names), t.path, t.lineno[0])
    cols = {r: c if isinstance(c, int) else names.index(c) for r, c in cols.items()}
    for role, c in cols.items():
        want = "token" if role in ("user", "item") else "float"
        if types[c] != want:
            msg = f"column {names[c]!r} has type {types[c]}; the {role} column must be {want}"
            _fail(msg, t.path, t.lineno[0], names[c])
    body = t.body()
    values = body.columns(names)
    return _from_columns({r: values[c] for r, c in cols.items()}, t.path, body.lineno)


def read_parquet(path, columns: dict | None = None) -> Interactions:
    """Parquet through pyarrow; columns as in `read_csv`. Nulls and NaN are errors."""
    import pyarrow.parquet as pq  # lazy: pyarrow is slow to import and most runs read text

    p = _check_file(path)
    try:  # pyarrow raises many types on a corrupt file (ArrowInvalid, OSError, UnicodeError)
        available = pq.read_schema(p).names
        cols = _resolve(columns, available, p, None)
        cols = {r: available[c] if isinstance(c, int) else c for r, c in cols.items()}
        table = pq.read_table(p, columns=list(dict.fromkeys(cols.values())))
    except (DataError, ConfigError):
        raise
    except Exception as e:
        _fail(f"not a readable Parquet file: {e}", p)
    if table.num_rows == 0:
        _fail("empty file: no rows", p)
    out = {role: _parquet_column(table.column(name), name, role, p) for role, name in cols.items()}
    return Interactions.from_raw(
        out["user"], out["item"], out.get("timestamp"), out.get("rating"), source=p
    )


def _parquet_column(column, name: str, role: str, p: str) -> np.ndarray:
    """One pyarrow column of a Parquet file as the values of `role` (ids, or float64 numbers:
    timestamps in seconds); nulls, NaN and unreadable or non-numeric columns are errors."""
    import pyarrow as pa

    arr = column.combine_chunks()
    if pa.types.is_dictionary(arr.type):  # pandas categoricals are stored this way
        arr = arr.dictionary_decode()
    if arr.null_count:
        row = np.argmax(arr.is_null().to_numpy(zero_copy_only=False)) + 1
        _fail(f"missing value (null) in column {name!r}", p, row, role)
    try:  # a damaged file can hold bytes that are not UTF-8 in a string column
        values = arr.to_numpy(zero_copy_only=False)
    except (pa.ArrowException, UnicodeError) as e:
        _fail(f"column {name!r} cannot be read ({e}); the file is damaged", p, None, role)
    if role in ("user", "item"):
        return _ids(values.astype(str), p, np.arange(1, len(values) + 1), role)
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        return values.astype("datetime64[s]").astype(np.int64) * 1.0
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        _fail(f"column {name!r} has type {arr.type}; expected numbers", p, None, role)
    numbers = values.astype(np.float64)
    if not np.isfinite(numbers).all():
        _fail("NaN or infinite value", p, np.argmin(np.isfinite(numbers)) + 1, role)
    return numbers


def read_npy_pairs(path) -> Interactions:
    """`.npy` integer array [N, 2] of (user, item) rows, loaded without pickle; file order kept."""
    p = _check_file(path)
    try:  # mmap: a header that claims a huge array fails instead of allocating it
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # numpy raises many types on corrupt headers; all mean "not .npy"
        _fail(f"not a readable .npy array file: {e}", p)
    if not isinstance(arr, np.ndarray):
        _fail("this is an .npz archive; give one of its .npy arrays", p)
    if arr.dtype.kind not in "iu":
        _fail(f"expected an integer array, found dtype {arr.dtype}", p, None, "dtype")
    if arr.ndim != 2 or arr.shape[1] != 2:
        _fail(f"expected shape (N, 2) [user, item], found {arr.shape}", p, None, "shape")
    if arr.shape[0] == 0:
        _fail("empty array: no events", p)
    arr = np.array(arr)  # copy out of the memory map
    return Interactions.from_raw(arr[:, 0], arr[:, 1], source=p)


def detect_format(path) -> str:
    """The format name of `path`: by file name first, then by sniffing the first 64 KiB."""
    p = Path(path)
    by_suffix = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy-pairs"}
    by_suffix |= {".inter": "recbole", ".csv": "csv", ".tsv": "csv", ".dat": "movielens-1m"}
    if p.name == "u.data":
        return "movielens-100k"
    if p.suffix.lower() in by_suffix:
        return by_suffix[p.suffix.lower()]
    head = _read_bytes(path, 1 << 16)
    if head.startswith((b"\x93NUMPY", b"PAR1")):
        return "npy-pairs" if head.startswith(b"\x93NUMPY") else "parquet"
    text = head.decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines = text.split("\n")[: -1 if len(head) == 1 << 16 else None]  # the last may be cut
    lines = [s for s in lines[:1000] if s.strip()]
    if not lines:
        _fail("empty file: no events", path)
    if "::" in lines[0]:
        return "movielens-1m"
    if re.search(r"\w:(token|float)(_seq)?\b", lines[0]):
        return "recbole"
    if all(len(s.split("\t")) == 4 for s in lines):
        return "movielens-100k"
    counts, users = [len(s.split()) for s in lines], [s.split()[0] for s in lines]
    if set(counts) == {2}:
        return "sasrec"
    if len(set(counts)) > 1:  # a user on several lines is SASRec with a bad line, which fails
        return "sasrec" if len(set(users)) < len(users) else "sequence-lines"
    msg = f"cannot tell the format: every line has {counts[0]} fields; pass format= one of"
    _fail(f"{msg} {', '.join(FORMATS)} (csv takes columns by position)", path)


def read_interactions(
    path, format: str | None = None, *, columns: dict | None = None, sep: str | None = None
) -> Interactions:
    """Read any of `FORMATS` into `Interactions`; `format=None` → `detect_format(path)`.

    columns: role → column mapping for csv, parquet and recbole; sep: the csv delimiter.
    """
    columns = columns or None
    if format is None:
        format = detect_format(path)
        if (columns is not None or sep is not None) and format not in ("parquet", "recbole"):
            format = "csv"  # a mapping or a separator means "read it as a table"
    if format not in FORMATS:
        near = difflib.get_close_matches(str(format), FORMATS, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(f"unknown data format {format!r}; {hint}known: {', '.join(FORMATS)}")
    if columns is not None and format not in ("csv", "parquet", "recbole"):
        raise ConfigError(f"format {format!r} has fixed columns; `columns` is for csv/parquet")
    if sep is not None and format != "csv":
        raise ConfigError(f"format {format!r} has a fixed separator; `sep` is for csv")
    if format == "csv":
        return read_csv(path, columns, sep)
    if format in ("parquet", "recbole"):
        return (read_parquet if format == "parquet" else read_recbole)(path, columns)
    return {
        "movielens-100k": read_movielens_100k,
        "movielens-1m": read_movielens_1m,
        "sasrec": read_sasrec,
        "sequence-lines": read_sequence_lines,
        "npy-pairs": read_npy_pairs,
    }[format](path)
