"""A figure of the report: its paper number, title, caption and PNG bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass


@dataclass
class Figure:
    number: str          # the paper's figure number, e.g. "5a-d"
    title: str
    caption: str
    png: bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()
