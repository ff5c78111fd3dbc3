"""Resource bounds checked while validating a config, before anything is written (one line instead of a crash
or a machine driven into swap)."""

import os

import numpy as np

from core.errors import ConfigError
from synthetic.task import TaskSpec

MAX_SAMPLES = 10**12  # fresh inputs per composition (or per group): beyond any machine, and int64-safe when summed


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def require_memory(what: str, n_bytes: float, lower: str) -> None:
    """Refuse the work `what` describes ("key=value ...", its subject in the plural) when it needs more than the
    machine's memory; `lower` names the keys that shrink it."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")  # this machine's physical memory
    if n_bytes > limit:
        raise ConfigError(f"{what} need about {gib(n_bytes)} of memory, more than this machine's {gib(limit)}; "
                          f"lower {lower}")


def evaluation_bytes(n_samples: np.ndarray, chunk: int, batch_size: int, spec: TaskSpec, with_replacement: bool,
                     model_args: dict) -> int:
    """Peak memory of scoring n_samples (C,) fresh inputs per composition (net.evaluate.evaluate_compositions):
    the inputs of `chunk` compositions are drawn at once (per sample a row index and its tokens, int64, and
    without replacement a float and an index per token of the alphabet, with a temporary copy), then decoded
    batch_size at a time (per sequence a KV cache and about 10 activations per layer, width and position, and the
    logits, float32)."""
    if not len(n_samples):
        return 0
    peak = int(np.add.reduceat(n_samples, np.arange(0, len(n_samples), chunk)).max())
    per_input = 2 * (8 * (1 + spec.seq_len) + (0 if with_replacement else 16 * spec.n_alphabets))
    layers, width = model_args.get("n_layer", 1), model_args.get("n_embd", 1)
    per_sequence = 4 * spec.doc_len * (12 * layers * width + 2 * model_args.get("vocab_size", spec.vocab_size))
    return peak * per_input + min(batch_size, peak) * per_sequence
