"""Shared command-line glue for the numbered scripts: one-line errors instead of tracebacks."""

import sys
from collections.abc import Callable
from typing import TypeVar

from synthetic.errors import PipelineError
from synthetic.tags import register_resolvers

register_resolvers()  # before any script composes its config

T = TypeVar("T")


def run_or_exit(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call `fn`; a PipelineError becomes `error: <message>` on stderr and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: nothing partial was left behind", file=sys.stderr)
        sys.exit(130)
