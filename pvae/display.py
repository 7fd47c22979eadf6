"""Short text and HTML forms of results and reports, for the console and Jupyter."""

from __future__ import annotations

import math
from html import escape

__all__ = ["Displayed", "with_error"]


def with_error(value: float, stderr: float) -> str:
    """``value ± stderr``, both rounded where the error's second significant figure falls;
    ``value`` to 6 significant figures where the error is 0, ``nan`` or infinite (then said as
    ``± nan`` or ``± inf``: an unknown error is never left out)."""
    if not math.isfinite(value):
        return f"{value} ± {stderr:.2g}"
    if not math.isfinite(stderr):
        return f"{value:.6g} ± {stderr}"
    if stderr == 0:
        return f"{value:.6g} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(stderr)))
    return f"{value:.{decimals}f} ± {stderr:.{decimals}f}"


class Displayed:
    """A mixin giving a result a short ``repr`` and an HTML table for Jupyter
    (``_repr_html_``), both from :meth:`_display`. Every number in them says which estimator
    produced it and carries its standard error or status, as the full fields do."""

    def _display(self) -> tuple[str, list[tuple[str, ...]]]:
        """The title and the rows ``(label, value)`` or ``(label, value, detail)``: the text
        form shows label and value, the HTML form the detail too."""
        raise NotImplementedError

    def __repr__(self) -> str:
        title, rows = self._display()
        width = max((len(row[0]) for row in rows), default=0)
        return "\n".join([title, *(f"  {row[0]:<{width}}  {row[1]}" for row in rows)])

    def _repr_html_(self) -> str:
        title, rows = self._display()
        cell = "<td style='text-align:left'>{}</td>"
        body = "".join(
            "<tr><th style='text-align:left'>"
            + escape(row[0])
            + "</th>"
            + "".join(cell.format(escape(text)) for text in row[1:])
            + "</tr>"
            for row in rows
        )
        return (
            "<table><caption style='text-align:left'><b>"
            + escape(title)
            + f"</b></caption><tbody>{body}</tbody></table>"
        )
