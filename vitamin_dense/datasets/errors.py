"""Errors of the data layer (one-line, user-facing messages)."""
from ..errors import VitaminDenseError


class DatasetError(VitaminDenseError, FileNotFoundError):
    """A data set file is missing or malformed; the message names the file and the
    expected layout (see ``configs/_base_/datasets/``)."""
