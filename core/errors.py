"""Errors caused by the user's input or files, which the command line reports as one line (exit status 2)."""


class TaskError(ValueError):
    """Task parameters that cannot be met (the message names the key, the value and what is allowed)."""


class DatasetError(TaskError):
    """A dataset folder that is missing, incomplete, malformed or fails its checksums."""


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""


class ConfigError(PipelineError):
    """An invalid configuration value. The message names the key, the value and what is allowed."""


class OutputError(PipelineError):
    """An output folder that cannot be written without losing data, or that another process is writing."""


USER_ERRORS = (PipelineError, TaskError)  # what the command line turns into one line


def first_line(err: BaseException) -> str:
    """An exception as one line: its message's first line, or its type's name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
