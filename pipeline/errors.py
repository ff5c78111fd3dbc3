"""Errors caused by the user's input or files, which the command line reports as one line (exit status 2)."""

from synthetic.errors import TaskError


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""


class ConfigError(PipelineError):
    """An invalid configuration value. The message names the key, the value and what is allowed."""


class OutputError(PipelineError):
    """An output folder that cannot be written without losing data, or that another process is writing."""


USER_ERRORS = (PipelineError, TaskError)  # what the command line turns into one line
