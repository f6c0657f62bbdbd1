"""MkDocs hook: pages that are generated, never hand-copied.

* `reference/config.md`, the configuration reference, is written at build time from the
  frozen dataclasses in `jaxrec/config.py`: every field's dotted key, type, default,
  allowed range and the comments (or attribute docstring) written beside it, and each
  section's class docstring. A field added to `config.py` appears on the next build.
* `results/**`: the measurement files under `benchmarks/results/<machine>/` (Markdown tables
  and PNG plots) are served as they are, so the docs link to them instead of copying them.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import inspect
import io
import re
import sys
import tokenize
import typing
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG_PAGE = "reference/config.md"


def on_files(files: Files, config) -> Files:
    """Adds the generated configuration reference and the results files to the site."""
    files.append(File.generated(config, CONFIG_PAGE, content=config_reference()))
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file() and path.suffix in {".md", ".png", ".svg", ".json"}:
            uri = "results/" + path.relative_to(RESULTS).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def _config_module():
    """`jaxrec.config` from this checkout, not from an installed copy."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("jaxrec.config")


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _field_notes(source: str) -> dict[str, dict[str, str]]:
    """Class name -> field name -> its description and annotation text.

    The description is the comment block right above the field, the comments on the
    field's own lines and an attribute docstring right below it, joined in that order.
    """
    lines = source.splitlines()
    comments = _comments(source)
    notes: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = notes.setdefault(node.name, {})
        body = node.body
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above = []
            n = stmt.lineno - 1
            while n >= 1 and lines[n - 1].strip().startswith("#"):
                above.insert(0, comments.get(n, ""))
                n -= 1
            inline = [comments[k] for k in range(stmt.lineno, stmt.end_lineno + 1) if k in comments]
            after = []
            nxt = body[i + 1] if i + 1 < len(body) else None
            if (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                after = [" ".join(nxt.value.value.split())]
            fields[stmt.target.id] = {
                "doc": " ".join(part for part in above + inline + after if part),
                "type": ast.unparse(stmt.annotation),
            }
    return notes


def _md_inline(text: str) -> str:
    """HTML-escaped text with `code` spans kept."""
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(
        f"<code>{html.escape(p[1:-1])}</code>"
        if p.startswith("`") and p.endswith("`")
        else html.escape(p)
        for p in parts
    )


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def iter_sections(cls: type, prefix: str = ""):
    """Yields (dotted prefix, dataclass) for `cls` and every nested config dataclass."""
    yield prefix, cls
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from iter_sections(tp, f"{prefix}{f.name}.")


def config_fields() -> list[str]:
    """Every leaf key of `jaxrec.config.Config`, dotted (e.g. `data.source`)."""
    module = _config_module()
    keys = []
    for prefix, cls in iter_sections(module.Config):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints.get(f.name)
            if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
                keys.append(prefix + f.name)
    return keys


def config_reference() -> str:
    """The Markdown of the configuration reference page."""
    module = _config_module()
    notes = _field_notes(Path(module.__file__).read_text(encoding="utf-8"))
    out = [
        "# Configuration reference",
        "",
        "Generated at build time from the dataclasses in `jaxrec/config.py` (their docstrings,",
        "field types, defaults, allowed ranges and the comments beside each field), so it always",
        "matches the code. A config file sets any of these keys in YAML; `--set key=value` on",
        "the command line overrides one (the value is parsed as YAML). An unknown key is an",
        "error that names the file, the line and the nearest valid key.",
        "",
    ]
    for prefix, cls in iter_sections(module.Config):
        rows = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints.get(f.name)
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                continue
            note = notes.get(cls.__name__, {}).get(f.name, {})
            key = prefix + f.name
            rng = f.metadata.get("range", "") or _choices(tp)
            if f.metadata.get("nonempty"):
                rng = f"{rng}, non-empty" if rng else "non-empty"
            rows.append(
                f'<tr id="{key}"><td><code>{key}</code></td>'
                f"<td><code>{html.escape(note.get('type', ''))}</code></td>"
                f"<td><code>{html.escape(_default(f))}</code></td>"
                f"<td>{html.escape(rng)}</td>"
                f"<td>{_md_inline(note.get('doc', ''))}</td></tr>"
            )
        if not rows:
            continue
        title = prefix.rstrip(".") or "top level"
        out += [f"## `{title}`", "", _doc(cls), ""]
        out += [
            '<table class="config-table">',
            "<thead><tr><th>key</th><th>type</th><th>default</th><th>allowed</th>"
            "<th>meaning</th></tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table>",
            "",
        ]
    return "\n".join(out) + "\n"


def _choices(tp) -> str:
    """The values of a `Literal[...]` type (also inside `X | None`), joined by " | "."""
    if typing.get_origin(tp) is typing.Literal:
        return " | ".join(str(v) for v in typing.get_args(tp))
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            return _choices(arg)
    return ""


def _doc(cls: type) -> str:
    doc = cls.__doc__ or ""
    if doc.startswith(cls.__name__ + "("):  # the signature dataclasses writes when undocumented
        return f"`{cls.__name__}`."
    return f"`{cls.__name__}`: " + inspect.cleandoc(doc)
