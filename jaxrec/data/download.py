"""Registry of public data sets and a fetcher that verifies before it extracts.

`fetch("ml-1m")` returns the folder the archive was extracted into, e.g.
`~/.cache/jaxrec/ml-1m/`, which holds `ml-1m/ratings.dat`. Nothing happens at import time.

Safety, in order: the archive is downloaded to a temporary file inside the cache dir; its sha256
is checked against the pinned digest before any member is read; every member is checked (no
absolute paths, no `..`, no links leaving the folder, no device files) before anything is
written; extraction goes to a temporary folder that is renamed into place in one step. Any
failure removes the temporary files, so the cache holds either a complete data set or nothing.

Cache dir: `cache_dir=` argument, else `$JAXREC_DATA_DIR`, else `~/.cache/jaxrec`.
Offline mode (`offline=True` or `JAXREC_OFFLINE=1`) never opens a URL: it uses the extracted
folder, or an archive the user placed at `<cache dir>/<archive name>`, or raises DownloadError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from jaxrec.errors import DownloadError

_MARKER = ".jaxrec-sha256"  # written last into a finished folder: its digest marks it complete
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One downloadable data set.

    name: cache folder name. url: archive location (zip or tar). sha256/size: the archive's
    pinned digest and byte count. files: paths inside the extracted folder that must exist; the
    first is the interaction file handed to the reader named by `format`. columns: column mapping
    {user, item, rating, timestamp} for the `csv` reader. source: where the digest came from.
    """

    name: str
    url: str
    sha256: str
    files: tuple[str, ...]
    format: str
    size: int | None = None
    columns: dict[str, str] | None = None
    source: str = ""

    def __post_init__(self):
        # The name becomes a folder name, so it must be one plain path component.
        if not self.name or self.name.startswith(".") or "/" in self.name or "\\" in self.name:
            raise DownloadError(f"dataset name {self.name!r} must be a plain folder name")

    @property
    def archive_name(self) -> str:
        """File name an offline user places in the cache dir, e.g. `ml-1m.zip`."""
        return posixpath.basename(urllib.parse.urlparse(self.url).path) or f"{self.name}.archive"


# Digests and sizes: tensorflow/datasets, tensorflow_datasets/url_checksums/movielens.txt
# (commit 1c076ac3c19c8ea83e1d1a75e0623c9a699e0d7c), which lists "url size sha256" per archive.
# Second, independent pins of the same digests: ml-1m in tensorflow/examples,
# lite/examples/recommendation/ml/data/example_generation_movielens.py (MOVIELENS_ZIP_HASH);
# ml-20m in dmbates/GroupLens.jl (DataDep "MovieLens-20m"); ml-100k in several public loaders.
# GroupLens itself publishes only MD5s. A digest here is a promise: never edit one by hand.
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_TFDS = "tensorflow/datasets: tensorflow_datasets/url_checksums/movielens.txt"
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="ml-100k",
            url=f"{_GROUPLENS}/ml-100k.zip",
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            size=4_924_029,
            files=("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user"),
            format="movielens-100k",
            source=_TFDS,
        ),
        Dataset(
            name="ml-1m",
            url=f"{_GROUPLENS}/ml-1m.zip",
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            size=5_917_549,
            files=("ml-1m/ratings.dat", "ml-1m/movies.dat", "ml-1m/users.dat"),
            format="movielens-1m",
            source=_TFDS,
        ),
        Dataset(
            name="ml-20m",
            url=f"{_GROUPLENS}/ml-20m.zip",
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            size=198_702_078,
            files=("ml-20m/ratings.csv", "ml-20m/movies.csv"),
            format="csv",
            columns={
                "user": "userId",
                "item": "movieId",
                "rating": "rating",
                "timestamp": "timestamp",
            },
            source=_TFDS,
        ),
    )
}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache dir: `cache_dir`, else `$JAXREC_DATA_DIR`, else `~/.cache/jaxrec`."""
    chosen = cache_dir or os.environ.get("JAXREC_DATA_DIR") or "~/.cache/jaxrec"
    return Path(chosen).expanduser()


def is_offline(offline: bool | None = None) -> bool:
    """`offline` if given, else whether `JAXREC_OFFLINE` is set to a true value."""
    if offline is not None:
        return offline
    return os.environ.get("JAXREC_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def verify(path: str | os.PathLike, sha256: str) -> None:
    """Raise DownloadError unless the file at `path` has this sha256 (hex, any case)."""
    got = _sha256(Path(path))
    if got != sha256.lower():
        raise DownloadError(
            f"{path}: sha256 is {got}, expected {sha256.lower()}; the file is corrupt, "
            "truncated or not the pinned release: delete it and fetch it again"
        )


def fetch(
    name: str | Dataset,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    url: str | None = None,
) -> Path:
    """Return the extracted folder of data set `name`, downloading it on first use.

    `name` is a key of DATASETS or a Dataset (for private mirrors and tests). An archive placed
    at `<cache dir>/<archive name>` is used instead of the network (and kept). `url` overrides
    where the archive comes from (a mirror, or a `file://` URL); the pinned sha256 still applies.
    `offline` (default: `JAXREC_OFFLINE`) forbids opening any URL.
    Raises DownloadError, leaving no partial files, when it cannot produce a verified folder.
    """
    entry = _lookup(name)
    root = cache_root(cache_dir)
    final = root / entry.name
    if _complete(final, entry):
        return final
    placed = root / entry.archive_name  # an archive the user copied in by hand
    if is_offline(offline) and not placed.is_file():
        raise DownloadError(
            f"dataset '{entry.name}' is not in the cache dir {root} and offline mode is on "
            f"(offline=True or JAXREC_OFFLINE=1): on a machine with network download "
            f"{url or entry.url} and place it at {placed} (sha256 {entry.sha256}), or turn "
            "offline mode off"
        )
    tmp_archive = tmp_dir = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        if placed.is_file():
            archive = placed  # the user's file: verified and read, never deleted by us
        else:
            fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{entry.name}-", suffix=".part")
            os.close(fd)
            archive = tmp_archive = Path(tmp_name)
            _download(url or entry.url, archive, entry)
        got = _sha256(archive)  # before extraction: unverified bytes are never parsed
        if got != entry.sha256.lower():
            where = f"your file {placed}" if archive == placed else f"{url or entry.url}"
            raise DownloadError(
                f"refusing '{entry.name}': {where} has sha256 {got}, not the pinned "
                f"{entry.sha256}; nothing was extracted: use the official archive and retry"
            )
        tmp_dir = Path(tempfile.mkdtemp(dir=root, prefix=f".{entry.name}-", suffix=".tmp"))
        _extract(archive, tmp_dir, f"archive of '{entry.name}'")
        missing = [f for f in entry.files if not (tmp_dir / f).is_file()]
        if missing:
            raise DownloadError(
                f"archive for '{entry.name}' lacks {missing}; the registry entry does not match "
                "this archive: fix the entry's `files` or use the pinned release"
            )
        (tmp_dir / _MARKER).write_text(entry.sha256.lower() + "\n")
        _install(tmp_dir, final, entry)
        return final
    except DownloadError:
        raise
    except Exception as e:  # any other failure still becomes one actionable message
        raise DownloadError(
            f"fetching '{entry.name}' failed: {e}; nothing was kept: fix and retry"
        ) from e
    finally:  # also on KeyboardInterrupt: an interrupted fetch leaves no partial files
        if tmp_archive is not None:
            tmp_archive.unlink(missing_ok=True)
        if tmp_dir is not None and tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _lookup(name: str | Dataset) -> Dataset:
    if isinstance(name, Dataset):
        return name
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset '{name}'; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def _complete(folder: Path, entry: Dataset) -> bool:
    """A folder counts only if our marker holds this digest and every named file exists."""
    marker = folder / _MARKER
    if not marker.is_file() or marker.read_text().strip() != entry.sha256.lower():
        return False
    return all((folder / f).is_file() for f in entry.files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, dest: Path, entry: Dataset) -> None:
    """Copy `url` (https, http or file) into `dest`; check the byte count when it is pinned."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("https", "http", "file"):
        raise DownloadError(f"url {url!r} has scheme {scheme!r}; use https://, http:// or file://")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except OSError as e:  # URLError and socket timeouts are OSErrors
        raise DownloadError(
            f"could not download '{entry.name}' from {url}: {e}; check the network, or fetch "
            f"it elsewhere and place it at {dest.parent / entry.archive_name}"
        ) from e
    got = dest.stat().st_size
    if entry.size is not None and got != entry.size:
        raise DownloadError(
            f"download of '{entry.name}' from {url} has {got} bytes, expected {entry.size}; "
            "it was cut short or the URL serves another file: retry"
        )


def _install(tmp_dir: Path, final: Path, entry: Dataset) -> None:
    """Rename the finished folder into place; a stale or concurrent folder is handled."""
    if final.exists() and not _complete(final, entry):
        shutil.rmtree(final)  # an unmarked folder under our cache name is a leftover of ours
    try:
        os.rename(tmp_dir, final)  # atomic on one file system: readers see all or nothing
    except OSError:
        if not _complete(final, entry):  # another process finishing first is fine; else fail
            raise


def _extract(archive: Path, dest: Path, label: str) -> None:
    """Check every member of a zip or tar archive, then extract it into `dest`.

    `label` names the archive in messages (the file itself may be a temporary `.part`).
    """
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info.filename, label)
                kind = stat.S_IFMT(info.external_attr >> 16)
                # zipfile would write a link as a file holding its target text, so links are
                # refused outright; so are device and fifo entries.
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise _refused(label, info.filename, "is a link or special file")
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                _check_tar_member(m, label)
            # The lexical checks above cannot see link chains (b -> a/.. with a -> .); the
            # stdlib "data" filter (Python >= 3.11.4) resolves real paths as it goes. Without
            # it, links are refused. A refusal mid-way only touches the temporary folder.
            if not hasattr(tarfile, "data_filter"):  # pragma: no cover - old Python 3.11
                for m in members:
                    if m.issym() or m.islnk():
                        raise _refused(label, m.name, "is a link (needs Python >= 3.11.4)")
                tf.extractall(dest, members=members)
                return
            try:
                tf.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as e:
                raise _refused(label, e.tarinfo.name, f"was refused: {e}") from None
    else:
        raise DownloadError(f"{label} is neither a zip nor a tar archive; check the URL")


def _check_tar_member(m: tarfile.TarInfo, label: str) -> None:
    _check_member(m.name, label)
    if m.ischr() or m.isblk() or m.isfifo():
        raise _refused(label, m.name, "is a device or fifo")
    if m.issym():  # a symlink target is relative to the link's own folder
        _check_target(posixpath.join(posixpath.dirname(m.name), m.linkname), label, m.name)
    elif m.islnk():  # a hardlink target is relative to the archive root
        _check_target(m.linkname, label, m.name)
    elif not (m.isfile() or m.isdir()):
        raise _refused(label, m.name, "has an unsupported member type")


def _check_member(name: str, label: str) -> None:
    """Refuse a member name that is absolute or has any `..` component."""
    posix = name.replace("\\", "/")  # zip names from Windows tools may use backslashes
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise _refused(label, name, "has an absolute path")
    if ".." in posix.split("/"):
        raise _refused(label, name, "has a '..' component")


def _check_target(target: str, label: str, member: str) -> None:
    """Refuse a link whose target, resolved inside the folder, is absolute or lies outside it."""
    posix = target.replace("\\", "/")
    if posix.startswith("/") or posixpath.normpath(posix).split("/")[0] == "..":
        raise _refused(label, member, f"links to {target!r}, outside the folder")


def _refused(label: str, member: str, why: str) -> DownloadError:
    return DownloadError(
        f"{label}: member {member!r} {why}; refusing to extract anything from this archive: "
        "use the official release or a trusted mirror"
    )
