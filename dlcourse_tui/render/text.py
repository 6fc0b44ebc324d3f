"""Numbers and tables as the CLI and the app both print them (Rich, no torch)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.markup import escape
from rich.table import Table


def fmt_metrics(metrics: Mapping[str, float]) -> str:
    """'loss 0.412  acc 87.3%': accuracies as percentages, the rest to 4 digits."""
    return "  ".join(f"{k} {v * 100:.1f}%" if k.endswith("acc") else f"{k} {v:.4g}" for k, v in metrics.items())


def metric_text(key: str, value: float) -> str:
    """One metric's value as a learner reads it: accuracies as percentages, counts whole
    (class coverage 10, not 10.0000), the rest to 4 significant digits (never -0)."""
    if key.endswith("acc"):
        return f"{value * 100:.1f}%"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e9):
        return str(int(value))
    text = f"{value:.4g}"
    return "0" if text in ("-0", "0") else text


def table_of(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> Table:
    """A task's table (a TableReady, or one read back from a run folder); its text is data, never markup."""
    table = Table(title=escape(title), title_justify="left")
    for col in columns:
        table.add_column(escape(col))
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table
