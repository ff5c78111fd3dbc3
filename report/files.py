"""Atomic writes: a temporary sibling, then os.replace, so a reader never sees half a file."""

import csv
import io
import os
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_rows_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """rows: dicts keyed by `columns`; None becomes an empty cell, floats keep 6 digits."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else round(row[c], 6) if isinstance(row[c], float) else row[c]
                         for c in columns])
    write_text_atomic(path, buffer.getvalue())
