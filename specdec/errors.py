"""User-facing errors.

A `SpecdecError` is a mistake the user can fix (bad model name, bad file, bad sampling value, prompt too
long). Its message is one sentence naming the bad value and what is accepted; the CLI prints it without a
traceback and exits non-zero. Anything else escaping is a bug in specdec.
"""


class SpecdecError(Exception):
    """A user mistake, reported as one clear sentence."""


class ModelNotFoundError(SpecdecError):
    """The model name, path or hub id does not resolve to a model."""


class ModelFileError(SpecdecError):
    """A model file exists but cannot be used (unreadable, truncated, wrong hash, unsupported)."""


class ConfigError(SpecdecError):
    """A configuration or sampling value is out of range."""


class ContextLengthError(SpecdecError):
    """The prompt plus requested new tokens does not fit the model's context window."""
