"""Errors that the command line reports as one line (no traceback)."""


class PipelineError(Exception):
    """Base class: an error caused by the user's input, reported as a single line."""


class ConfigError(PipelineError):
    """An invalid configuration value. The message names the key, the value and what is allowed."""


class DatasetError(PipelineError):
    """A dataset folder that is missing, incomplete or fails its checksums."""
