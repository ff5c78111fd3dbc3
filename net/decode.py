"""Greedy decoding (docs/task.md §8): the model writes every token after the prompt itself.

`greedy_decode` runs the prompt once (`model.prefill`) and then one token per call (`model.step`: KV cache for
nanoGPT, recurrent state for the LSTM). `naive_greedy_decode` is the reference pipeline's method, re-running
the whole growing sequence at every token; it is kept as the yardstick for tests and the benchmark.
Both return the same tokens. Callers choose the device and autocast (see net.evaluate).
"""

import torch
from torch import nn


@torch.inference_mode()
def greedy_decode(model: nn.Module, prompts: torch.Tensor, total_len: int) -> torch.Tensor:
    """prompts (B, P) int64 -> documents (B, total_len): the prompt, then argmax tokens until total_len."""
    B, P = prompts.shape
    out = torch.empty(B, total_len, dtype=torch.long, device=prompts.device)
    out[:, :P] = prompts
    logits, state = model.prefill(prompts)  # (B, V)
    for t in range(P, total_len):
        out[:, t] = logits.argmax(dim=-1)
        if t + 1 < total_len:  # the last token needs no further logits
            logits, state = model.step(out[:, t], state)
    return out


@torch.inference_mode()
def naive_greedy_decode(model: nn.Module, prompts: torch.Tensor, total_len: int) -> torch.Tensor:
    """Same contract as `greedy_decode`, by a full forward pass over the sequence so far at every token."""
    out = prompts
    for _ in range(total_len - prompts.size(1)):
        logits = model(out)[:, -1]  # (B, V)
        out = torch.cat([out, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return out


@torch.inference_mode()
def teacher_forced_argmax(model: nn.Module, docs: torch.Tensor) -> torch.Tensor:
    """The model's argmax next token at every position given the true document: docs (B, T) -> (B, T-1),
    where column t predicts docs[:, t+1]."""
    return model(docs[:, :-1]).argmax(dim=-1)


@torch.inference_mode()
def generate_and_teacher_force(model: nn.Module, docs: torch.Tensor,
                               prompt_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Free generation and teacher-forced predictions for true documents docs (B, T), sharing the work.

    Returns (generated (B, T), teacher-forced argmax (B, T-1)). Teacher forcing runs first, as one forward
    pass. A row whose every token after the prompt is predicted right under teacher forcing is generated
    exactly as the true document (by induction: each generated prefix equals the true prefix, so the next
    argmax is the teacher-forced one), so only rows with a teacher-forced mistake are decoded token by token.
    A trained model leaves few such rows; the result is the same as decoding every row.
    """
    tf = teacher_forced_argmax(model, docs)  # (B, T-1)
    wrong = (tf[:, prompt_len - 1 :] != docs[:, prompt_len:]).any(dim=1)  # (B,)
    generated = docs.clone()
    if wrong.any():
        generated[wrong] = greedy_decode(model, docs[wrong, :prompt_len], docs.size(1))
    return generated, tf
