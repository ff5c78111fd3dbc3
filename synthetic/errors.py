"""Errors of the task itself, reported by the command line as one line (no traceback)."""


class TaskError(ValueError):
    """Task parameters that cannot be met (the message names the key, the value and what is allowed)."""


class DatasetError(TaskError):
    """A dataset folder that is missing, incomplete, malformed or fails its checksums."""
