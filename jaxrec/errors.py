"""Errors a user can cause. Each message says what went wrong and what to do.

Every exception jaxrec raises on purpose derives from `JaxrecError`, so the CLI can print
it as one line (no traceback) and exit with status 2.
"""

from __future__ import annotations


class JaxrecError(Exception):
    """Base class of every error jaxrec raises on purpose."""


class ConfigError(JaxrecError):
    """A config file, a `--set` override or a CLI argument is wrong."""


class DataError(JaxrecError):
    """Input data is malformed. The message names the file, the line (1-based) and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.path, self.line, self.field = path, line, field
        where = ""
        if path is not None:
            where = str(path) if line is None else f"{path}:{line}"
        if field is not None:
            where = f"{where}: field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class DownloadError(JaxrecError):
    """A data set could not be fetched, verified or extracted; nothing was left behind."""


class CheckpointError(JaxrecError):
    """A workdir or checkpoint cannot be used as asked."""
