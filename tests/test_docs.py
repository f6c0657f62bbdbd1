"""The documentation: the MkDocs site builds with warnings as errors, its configuration
reference lists every config field, and the README stays a short user's page whose links
resolve and whose quick start is what CI runs."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _hook():
    """docs/hooks/site_files.py, the hook that generates the configuration reference."""
    spec = importlib.util.spec_from_file_location("site_files", ROOT / "docs/hooks/site_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_site_builds_strict_and_reference_lists_every_config_field(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    rows = set(re.findall(r'<tr id="([a-z0-9_.]+)"', page))
    fields = _hook().config_fields()
    assert len(fields) > 100
    assert set(fields) == rows
    for page in ("index.html", "models/caser/index.html", "results/cpu-2core-amd/quick/index.html"):
        assert (site / page).is_file(), page


def test_reference_reads_types_defaults_ranges_and_comments():
    text = _hook().config_reference()
    row = re.search(r'<tr id="train.patience">(.*?)</tr>', text).group(1)
    assert "<code>int</code>" in row and "<code>0</code>" in row and "&gt;= 0" in row
    assert "without improvement" in row  # the comment above the field in config.py
    row = re.search(r'<tr id="eval.ks">(.*?)</tr>', text).group(1)
    assert "[10, 20]" in row and "non-empty" in row


def test_readme_is_short_keeps_the_quick_start_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    quick_start = "pip install . && jaxrec train\npip install '.[test]' && python -m pytest\n"
    assert quick_start in readme
    assert "pip install '.[test]' && python -m pytest" in (ROOT / ".ci/run").read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme):
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), target
