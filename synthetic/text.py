"""Token ids back to readable text, for printouts of documents and model mistakes."""

from collections.abc import Sequence


def token_text(vocab: Sequence[str], token: int) -> str:
    """One token's string; the separator ' ' is shown as '|', an id beyond the vocabulary (a model's padded
    output head) as '<id>'."""
    t = int(token)
    if t >= len(vocab):
        return f"<{t}>"
    return "|" if vocab[t] == " " else vocab[t]


def decode_tokens(vocab: Sequence[str], ids: Sequence[int]) -> str:
    """Space-joined token strings (see token_text)."""
    return " ".join(token_text(vocab, t) for t in ids)
