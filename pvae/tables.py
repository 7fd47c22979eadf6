"""Result tables: written as CSV or JSON by the file's suffix, or printed as fixed-width text."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pvae.files import write_text

__all__ = ["Column", "format_table", "write_table"]


@dataclass(frozen=True)
class Column:
    """One column of a fixed-width text table (:func:`format_table`).

    :ivar header: the column's title in the header line.
    :ivar width: the width the header and every cell are padded to, or ``None`` for no
        padding (a last column of free text). A longer cell is printed whole, never cut.
    :ivar align: ``">"`` (right, default) or ``"<"`` (left), for the header and the cells.
    :ivar key: the row entry the cell shows, formatted with ``spec`` (a value ``None`` shows
        ``missing``). Unused if ``cell`` is given; one of the two is required.
    :ivar spec: the format spec of ``key``'s value, without alignment and width (e.g.
        ``".3f"``, ``"+.2f"``, ``".0%"``; default ``""``).
    :ivar cell: a function of the row returning the cell's text, for cells made of several
        entries or with rules of their own; it replaces ``key`` and ``spec``.
    :ivar missing: the text of a cell whose ``key`` value is ``None`` (default ``"—"``).
    :ivar separator: the text before the column, in the header and in every row (default
        none).
    """

    header: str
    width: int | None = None
    align: str = ">"
    key: str | None = None
    spec: str = ""
    cell: Callable[[dict], str] | None = None
    missing: str = "—"
    separator: str = ""

    def __post_init__(self):
        if self.align not in ("<", ">"):
            raise ValueError(f"align must be '<' or '>', got {self.align!r}")
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ValueError(f"width must be a positive integer or None, got {self.width!r}")
        if self.key is None and self.cell is None:
            raise ValueError(f"column {self.header!r} needs a key or a cell function")

    def pad(self, text: str) -> str:
        """``text`` after the separator, aligned in the column's width."""
        return self.separator + (text if self.width is None else f"{text:{self.align}{self.width}}")

    def text(self, row: dict) -> str:
        """The cell of ``row``, not yet padded."""
        if self.cell is not None:
            return self.cell(row)
        value = row[self.key]
        return self.missing if value is None else format(value, self.spec)


def format_table(
    rows: list[dict], columns: list[Column], *, rule: bool = True, rule_extra: int = 0
) -> str:
    """``rows`` as a fixed-width text table: a header line of the ``columns``' titles, a rule
    of dashes, then one line per row (no trailing newline).

    :param rows: the table's rows, dicts holding every column's ``key``.
    :param columns: the columns, left to right.
    :param bool rule: print the rule under the header (default ``True``).
    :param int rule_extra: dashes the rule runs past the header, for a last column of free
        text wider than its title (default 0: as long as the header).
    """
    header = "".join(column.pad(column.header) for column in columns)
    lines = [header]
    if rule:
        lines.append("-" * (len(header) + rule_extra))
    for row in rows:
        lines.append("".join(column.pad(column.text(row)) for column in columns))
    return "\n".join(lines)


def write_table(path, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with the same keys) to ``path``: JSON if it ends in ``.json``,
    else CSV with a header row; whole or not at all, replacing a symlink at ``path`` rather
    than writing through it (:func:`pvae.files.write_text`). Creates the parent folder."""
    path = Path(path)
    if not rows:
        raise ValueError(f"no rows to write to {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        return write_text(path, json.dumps(rows, indent=2) + "\n")
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, text.getvalue())
