"""Token ids back to readable text, for printouts of documents and model mistakes."""

from collections.abc import Sequence


def decode_tokens(vocab: Sequence[str], ids: Sequence[int]) -> str:
    """Space-joined token strings; the separator ' ' is shown as '|'."""
    return " ".join("|" if vocab[int(t)] == " " else vocab[int(t)] for t in ids)
