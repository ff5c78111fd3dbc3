"""CSV tables of the report, written atomically."""

import csv
import io
from pathlib import Path

from synthetic.atomic import write_text_atomic


def write_rows_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """rows: dicts keyed by `columns`; None becomes an empty cell, floats keep 6 digits."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else round(row[c], 6) if isinstance(row[c], float) else row[c]
                         for c in columns])
    write_text_atomic(path, buffer.getvalue())
