"""Exceptions that carry a one-line, user-facing message.

Command-line tools catch :class:`VitaminDenseError` and print its message
instead of a traceback; library users can catch the specific subclasses.
"""


class VitaminDenseError(Exception):
    """Base class: the message says what is wrong and what to do."""


class WeightsError(VitaminDenseError):
    """Weights could not be found, downloaded, read or matched to a model."""


class VocabularyError(VitaminDenseError, ValueError):
    """A vocabulary is empty, malformed or has duplicated names."""


class ImageReadError(VitaminDenseError):
    """An image is missing, unreadable or of an unsupported kind."""


class ConfigError(VitaminDenseError, ValueError):
    """A configuration value is invalid (unknown model, bad stride, ...)."""
