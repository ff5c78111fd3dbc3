"""The task's vocabulary and document layout (docs/task.md §1 and §4). Token ids are part of the on-disk format."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """Sizes of one function-composition task and the layout of its documents.

    Token ids: data `X0..X{A-1}` = 0..A-1; task `T{d}_{i}` = A + d·(N+1) + i; then separator, <PAD>, start.
    """

    n_alphabets: int  # A: number of data tokens
    seq_len: int  # m: tokens per input x
    depth: int  # L: composition depth (number of slots / levels)
    n_functions: int  # N: non-identity functions per level
    direct: bool = False  # True: the document holds only the final output

    @property
    def vocab_size(self) -> int:
        return self.n_alphabets + self.depth * (self.n_functions + 1) + 3

    @property
    def sep_id(self) -> int:
        return self.vocab_size - 3

    @property
    def pad_id(self) -> int:
        return self.vocab_size - 2

    @property
    def start_id(self) -> int:
        return self.vocab_size - 1

    def task_token(self, level: int, fn: int) -> int:
        """Token id of function `fn` (0 = identity) of level `level`."""
        return self.n_alphabets + level * (self.n_functions + 1) + fn

    @property
    def prompt_len(self) -> int:
        """P: `S`, L task tokens, ' ', x (m tokens), ' '."""
        return self.depth + self.seq_len + 3

    @property
    def n_steps(self) -> int:
        """How many outputs the document holds after the prompt: all L steps, or only y_L when direct."""
        return 1 if self.direct else self.depth

    @property
    def doc_len(self) -> int:
        return self.prompt_len + self.n_steps * self.seq_len + (self.n_steps - 1)

    @property
    def step_starts(self) -> tuple[int, ...]:
        """First column of each output written after the prompt (y_1..y_L, or y_L alone when direct)."""
        return tuple(self.prompt_len + k * (self.seq_len + 1) for k in range(self.n_steps))

    @property
    def output_start(self) -> int:
        """First column of the final output y_L: it fills doc[:, output_start:]."""
        return self.doc_len - self.seq_len

    def vocab(self) -> list[str]:
        """Token strings, index = token id."""
        data = [f"X{a}" for a in range(self.n_alphabets)]
        tasks = [f"T{d}_{i}" for d in range(self.depth) for i in range(self.n_functions + 1)]
        return data + tasks + [" ", "<PAD>", "S"]


def loss_floors(spec: TaskSpec, n_compositions: int, with_replacement: bool = True) -> tuple[float, float]:
    """(solved, plateau): the mean next-token loss over a document, in nats per predicted token as training logs it,
    of two ideal models that know how prompts are drawn. `solved` writes every output exactly; `plateau` guesses each
    output token uniformly (ln A): a model whose loss sits there has learned the prompt but not the answer (direct
    documents at 512 compositions: 1.783). Prompts cost ln(n_compositions) for the task tokens (one training
    composition, drawn uniformly) and ln A per input token (ln(A!/(A-m)!) in all without replacement); the start,
    blank and separator tokens are certain."""
    A, m = spec.n_alphabets, spec.seq_len
    inputs = m * math.log(A) if with_replacement else math.lgamma(A + 1) - math.lgamma(A - m + 1)
    solved = math.log(n_compositions) + inputs
    guessed = solved + spec.n_steps * m * math.log(A)
    return solved / (spec.doc_len - 1), guessed / (spec.doc_len - 1)
