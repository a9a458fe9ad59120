"""The project's own error types: the only exceptions a stage turns into a one-line message.

A `DSPOError` means the *input* is wrong (a param, a file, a split, a task name) and says what
to fix; the stage prints it on one line and exits with status 2. Anything else is a bug and
keeps its traceback. Each class subclasses ValueError so callers that catch bad values keep working.
"""
from __future__ import annotations


class DSPOError(ValueError):
    """Bad input to a stage; the message names the file or the param and what would be valid."""


class ParamError(DSPOError):
    """A hyper-parameter is missing, unknown or out of range (named as `section.key`)."""


class SchemaError(DSPOError):
    """A table on disk does not match its schema; the message names the file and the field."""


class DataError(DSPOError):
    """The data cannot be learned from as given (empty split, shape mismatch, missing rows)."""


class SplitError(DSPOError):
    """The collected episodes cannot give a D^S / D^U split with the required properties."""


class UnknownTaskError(DSPOError):
    """A task name that is not in the registry."""


class CheckpointMismatchError(DSPOError):
    """A checkpoint of another kind, task or size than the one asked for."""


class MissingArtifactError(DSPOError, FileNotFoundError):
    """An input file does not exist yet; the message names the stage that makes it."""
