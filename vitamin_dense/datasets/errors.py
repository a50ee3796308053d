"""Errors of the data layer (one-line, user-facing messages)."""
from ..errors import VitaminDenseError


class DatasetError(VitaminDenseError, ValueError):
    """A data set's files or settings are unusable; the message says what and how to fix
    (for missing files: the file and the expected layout, see ``configs/_base_/datasets/``)."""


class DatasetFileError(DatasetError, FileNotFoundError):
    """A file or folder a data set needs is missing or unreadable."""
