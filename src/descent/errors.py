"""One exception family. Every message is written for a person: it names the
file, row, column or option that is wrong and says what would work."""

from __future__ import annotations


class DescentError(Exception):
    """Base of every error descent raises on purpose. The CLI prints its message
    (no traceback unless --debug) and exits with status 2."""


class ConfigError(DescentError):
    """An option or argument has a value that cannot work."""


class DataError(DescentError):
    """A data file or array is missing, malformed or inconsistent."""


class FormulaError(DescentError):
    """A model formula is not allowed or cannot be parsed."""


class CheckpointError(DescentError):
    """A model or checkpoint file is missing, corrupt or of another format."""


class RunFolderError(DescentError):
    """A run folder cannot be used: not empty, not a descent run, or in use by another run."""


class OutputError(DescentError):
    """An output file cannot be written: a folder in the way, no permission, no space."""
