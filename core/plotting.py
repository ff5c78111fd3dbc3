"""Figures without a window or global pyplot state: matplotlib's object API on the Agg canvas, saved atomically."""

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.io import write_bytes


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path, dpi: int = 120, tight: bool = False) -> None:
    """Render in memory, then write atomically (`tight`: crop to the drawn area)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    write_bytes(path, buffer.getvalue())
