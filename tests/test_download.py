"""jaxrec.data.download: checksum before extraction, safe extraction, cache and offline mode.

Every test builds its archives in tmp_path and fetches them through file:// URLs: no network.
"""

import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from jaxrec.data import download
from jaxrec.data.download import DATASETS, Dataset, fetch, verify
from jaxrec.errors import DownloadError

RATINGS = b"1\t10\t5\t881250949\n2\t20\t3\t891717742\n"
GOOD = {"toy/ratings.tsv": RATINGS, "toy/README": b"toy data\n"}


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps hostile names verbatim
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _entry(archive: Path, sha256: str | None = None, size: int | None = None) -> Dataset:
    digest = sha256 or hashlib.sha256(archive.read_bytes()).hexdigest()
    return Dataset(
        name="toy",
        url=archive.as_uri(),
        sha256=digest,
        size=size,
        files=("toy/ratings.tsv",),
        format="movielens-100k",
    )


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.fixture
def no_network(monkeypatch):
    """Make any URL open fail loudly; returns the list of URLs that were attempted."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise AssertionError(f"network touched: {url}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("JAXREC_OFFLINE", raising=False)
    monkeypatch.delenv("JAXREC_DATA_DIR", raising=False)


@pytest.mark.parametrize("build", [_zip, _tar], ids=["zip", "tar.gz"])
def test_fetch_extracts_verifies_and_then_hits_cache(tmp_path, monkeypatch, build):
    archive = build(tmp_path / "toy.archive", GOOD)
    cache = tmp_path / "cache"
    out = fetch(_entry(archive), cache_dir=cache)
    assert out == cache / "toy"
    assert (out / "toy/ratings.tsv").read_bytes() == RATINGS
    assert (out / "toy/README").read_bytes() == b"toy data\n"
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]  # no temp files left

    entry = _entry(archive)
    archive.unlink()  # the second fetch must not need the URL at all
    calls = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: calls.append(a))
    assert fetch(entry, cache_dir=cache) == out
    assert calls == []


def test_verify_accepts_match_and_rejects_mismatch(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    verify(f, hashlib.sha256(b"abc").hexdigest().upper())  # any case is fine
    with pytest.raises(DownloadError, match="sha256"):
        verify(f, "0" * 64)


def test_tampered_archive_is_refused_and_nothing_kept(tmp_path):
    archive = _zip(tmp_path / "toy.zip", GOOD)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="not the pinned"):
        fetch(_entry(archive, sha256="ab" * 32), cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_wrong_size_is_refused(tmp_path):
    archive = _zip(tmp_path / "toy.zip", GOOD)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="expected 12;"):
        fetch(_entry(archive, size=12), cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_garbage_with_matching_digest_is_refused(tmp_path):
    junk = tmp_path / "toy.zip"
    junk.write_bytes(b"not an archive at all" * 10)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        fetch(_entry(junk), cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_archive_without_the_named_files_is_refused(tmp_path):
    archive = _zip(tmp_path / "toy.zip", {"other/x.txt": b"x"})
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="lacks"):
        fetch(_entry(archive), cache_dir=cache)
    assert list(cache.iterdir()) == []


# The hostile member comes last, so extracting member by member would already have written
# the good ones: the cache must still end up empty.
HOSTILE = {
    "zip-dotdot": lambda p: _zip(p, {**GOOD, "../../evil": b"x"}),
    "zip-absolute": lambda p: _zip(p, {**GOOD, "/tmp/jaxrec-evil": b"x"}),
    "zip-symlink": lambda p: _zip(p, GOOD, links={"toy/link": "../../../evil"}),
    "tar-dotdot": lambda p: _tar(p, {**GOOD, "toy/../../evil": b"x"}),
    "tar-absolute": lambda p: _tar(p, {**GOOD, "/tmp/jaxrec-evil": b"x"}),
    "tar-symlink-out": lambda p: _tar(p, GOOD, [_link("toy/link", "../../evil")]),
    "tar-symlink-abs": lambda p: _tar(p, GOOD, [_link("toy/link", "/etc/passwd")]),
    "tar-hardlink-out": lambda p: _tar(p, GOOD, [_link("toy/h", "../evil", tarfile.LNKTYPE)]),
    "tar-device": lambda p: _tar(p, GOOD, [_link("toy/dev", "", tarfile.CHRTYPE)]),
    # Each link looks inside on its own; together toy/b resolves to the cache's parent.
    "tar-link-chain": lambda p: _tar(p, GOOD, [_link("toy/a", "."), _link("toy/b", "a/../..")]),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_members_refuse_the_whole_archive(tmp_path, kind):
    archive = HOSTILE[kind](tmp_path / "toy.archive")
    cache = tmp_path / "deep" / "cache"
    before = _all_files(tmp_path)
    with pytest.raises(DownloadError, match="refusing to extract anything"):
        fetch(_entry(archive), cache_dir=cache)
    assert list(cache.iterdir()) == []
    assert _all_files(tmp_path) - before == {tmp_path / "deep", cache}
    assert not Path("/tmp/jaxrec-evil").exists()


def test_links_inside_the_folder_are_allowed(tmp_path):
    archive = _tar(tmp_path / "toy.tgz", GOOD, [_link("toy/alias", "ratings.tsv")])
    out = fetch(_entry(archive), cache_dir=tmp_path / "cache")
    assert (out / "toy/alias").read_bytes() == RATINGS


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    class Dies(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise KeyboardInterrupt
            return super().read(4)

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Dies(b"x" * 100))
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        fetch(_entry(_zip(tmp_path / "toy.zip", GOOD)), cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_unreachable_url_says_where_to_place_the_archive(tmp_path):
    entry = _entry(_zip(tmp_path / "toy.zip", GOOD))
    missing = (tmp_path / "nope.zip").as_uri()
    with pytest.raises(DownloadError, match="place it at .*toy.zip"):
        fetch(entry, cache_dir=tmp_path / "cache", url=missing)
    assert list((tmp_path / "cache").iterdir()) == []


def test_url_override_is_used_and_still_verified(tmp_path):
    archive = _zip(tmp_path / "mirror.zip", GOOD)
    entry = Dataset(**{**_entry(archive).__dict__, "url": "https://example.invalid/toy.zip"})
    out = fetch(entry, cache_dir=tmp_path / "cache", url=archive.as_uri())
    assert (out / "toy/ratings.tsv").read_bytes() == RATINGS


@pytest.mark.parametrize("how", ["argument", "env"])
def test_offline_with_empty_cache_names_dataset_and_dir(tmp_path, monkeypatch, no_network, how):
    cache = tmp_path / "cache"
    if how == "env":
        monkeypatch.setenv("JAXREC_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        fetch("ml-1m", cache_dir=cache, offline=True if how == "argument" else None)
    msg = str(err.value)
    assert "'ml-1m'" in msg and str(cache) in msg and str(cache / "ml-1m.zip") in msg
    assert no_network == [] and not cache.exists()


def test_offline_with_populated_cache_works(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "toy.zip", GOOD)
    cache = tmp_path / "cache"
    out = fetch(_entry(archive), cache_dir=cache)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    monkeypatch.setenv("JAXREC_OFFLINE", "1")
    assert fetch(_entry(archive), cache_dir=cache) == out


def test_offline_uses_an_archive_placed_by_hand(tmp_path, no_network):
    archive = _zip(tmp_path / "toy.zip", GOOD)
    cache = tmp_path / "cache"
    cache.mkdir()
    placed = cache / "toy.zip"
    placed.write_bytes(archive.read_bytes())
    out = fetch(_entry(archive), cache_dir=cache, offline=True)
    assert (out / "toy/ratings.tsv").read_bytes() == RATINGS
    assert placed.is_file() and no_network == []  # the user's file is kept


def test_placed_archive_with_wrong_digest_is_refused_but_kept(tmp_path, no_network):
    cache = tmp_path / "cache"
    cache.mkdir()
    placed = _zip(cache / "toy.zip", {"toy/ratings.tsv": b"tampered"})
    entry = _entry(_zip(tmp_path / "toy.zip", GOOD))
    with pytest.raises(DownloadError, match="not the pinned"):
        fetch(entry, cache_dir=cache, offline=True)
    assert sorted(cache.iterdir()) == [placed]


def test_data_dir_env_and_default(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "toy.zip", GOOD)
    monkeypatch.setenv("JAXREC_DATA_DIR", str(tmp_path / "envdir"))
    assert fetch(_entry(archive)) == tmp_path / "envdir" / "toy"
    assert download.cache_root(tmp_path / "x") == tmp_path / "x"  # the argument wins
    monkeypatch.delenv("JAXREC_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.cache_root() == tmp_path / "home" / ".cache" / "jaxrec"


def test_unknown_name_lists_choices():
    with pytest.raises(DownloadError, match="ml-100k"):
        fetch("ml-does-not-exist", offline=True)
    with pytest.raises(DownloadError, match="plain folder name"):
        Dataset(name="../x", url="file:///x", sha256="0" * 64, files=(), format="csv")


def test_registry_entries_are_pinned():
    assert {"ml-100k", "ml-1m", "ml-20m"} <= set(DATASETS)
    formats = {"ml-100k": "movielens-100k", "ml-1m": "movielens-1m", "ml-20m": "csv"}
    for name, d in DATASETS.items():
        assert d.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", d.sha256), name
        assert d.url.startswith("https://files.grouplens.org/datasets/movielens/"), name
        assert d.archive_name == f"{name}.zip" and d.size and d.size > 0 and d.source
        assert d.files and all(f.startswith(f"{name}/") for f in d.files)
        assert d.format == formats[name]
    assert DATASETS["ml-100k"].files[0] == "ml-100k/u.data"
    assert DATASETS["ml-1m"].files[0] == "ml-1m/ratings.dat"
    assert DATASETS["ml-20m"].files[0] == "ml-20m/ratings.csv"
    assert list(DATASETS["ml-20m"].columns.values()) == ["userId", "movieId", "rating", "timestamp"]


def test_import_touches_no_network():
    code = (
        "import socket, urllib.request\n"
        "def boom(*a, **k): raise SystemExit('network at import')\n"
        "socket.socket.connect = boom; urllib.request.urlopen = boom\n"
        "import jaxrec.data.download\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAXREC_DATA_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_stale_cache_folder_is_replaced(tmp_path):
    archive = _zip(tmp_path / "toy.zip", GOOD)
    cache = tmp_path / "cache"
    out = fetch(_entry(archive), cache_dir=cache)
    (out / ".jaxrec-sha256").write_text("0" * 64)  # e.g. the pinned digest changed since
    (out / "toy/ratings.tsv").write_bytes(b"stale")
    assert fetch(_entry(archive), cache_dir=cache) == out
    assert (out / "toy/ratings.tsv").read_bytes() == RATINGS
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]
