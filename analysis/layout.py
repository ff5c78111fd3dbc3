"""Where things sit in a document (docs/task.md §4), seen from the model's input `doc[:, :-1]`.

Position t of the input predicts doc[t + 1]. The positions that *compute* output step k (0-based) are the
ones whose next token belongs to y_{k+1}: `step_starts[k] + j - 1` for j in 0..m-1.
"""

import numpy as np

from synthetic.task import TaskSpec


def step_query_positions(spec: TaskSpec) -> np.ndarray:
    """(n_steps, m) input positions predicting each output step's tokens."""
    return np.array(spec.step_starts)[:, None] + np.arange(spec.seq_len)[None, :] - 1


def task_position(slot: int) -> int:
    """Column of slot `slot`'s task token (right after the start token)."""
    return 1 + slot


def previous_step_start(spec: TaskSpec, k: int) -> int:
    """First column of the tokens step k (0-based) is computed from: x for step 0 (after `S`, the L task tokens and
    a separator), else y_k."""
    return spec.depth + 2 if k == 0 else spec.step_starts[k - 1]


def position_labels(spec: TaskSpec, length: int) -> list[str]:
    """A short role label per document column: S, T1..TL (task slots), |, x1.., then y{k}.{j} per step."""
    labels = ["S"] + [f"T{k + 1}" for k in range(spec.depth)] + ["|"] + [f"x{j + 1}" for j in range(spec.seq_len)]
    for k, start in enumerate(spec.step_starts):
        name = spec.depth if spec.direct else k + 1
        labels += ["|"] * (start - len(labels)) + [f"y{name}.{j + 1}" for j in range(spec.seq_len)]
    return labels[:length]
