"""Text from a run file, made safe for where it is shown, and the plain tables it is shown in.

A run's name, status, warnings and config values are written by whoever made the file. Shown
raw, a name can move a terminal's cursor or retitle its window (escape sequences), open an HTML
tag in a report page, turn into a link or a formula in Markdown, or stop matplotlib drawing a
figure (``$\\frac{$`` is parsed as mathtext). Each reader passes such text through the function
for its medium: ``printable`` for a terminal, ``markdown`` for ``index.md``, ``html.escape``
(after ``printable``) for ``index.html``, ``plot_label`` for figures.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any, Iterable, Sequence

# Bidirectional overrides and isolates reorder what a terminal shows without being control
# characters (category Cf); the zero-width ones hide text.
_INVISIBLE = set("\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
_SPACES = set("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
# A whole escape sequence (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL/ST``, or ESC and one
# character) goes, not only its ESC, so no half of it is left on screen.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]|\x1b.?",
                              re.DOTALL)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")


def printable(text: Any) -> str:
    """``text`` on one line, showing what it says: tabs and line breaks become spaces, other
    control characters (C0, C1, DEL: what escape sequences are made of) and direction
    overrides are removed."""
    text = _ESCAPE_SEQUENCE.sub("", str(text))
    return "".join(" " if ch in _SPACES else ch for ch in text
                   if ch in _SPACES or (unicodedata.category(ch) != "Cc" and ch not in _INVISIBLE))


def printable_lines(text: Any) -> str:
    """``printable`` line by line: a block made of lines (a table, statistics) keeps its line
    breaks and loses everything else ``printable`` removes."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def markdown(text: Any) -> str:
    """``printable`` text that Markdown shows literally: HTML's three specials as entities,
    every other ASCII punctuation mark Markdown gives a meaning (links, emphasis, code,
    ``$`` math on GitHub) backslash-escaped."""
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code_fence(body: str) -> str:
    """A fence for a Markdown code block that ``body`` cannot close: longer than any run of
    backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def plot_label(text: Any) -> str:
    """``printable`` text that matplotlib draws as written: every ``$`` escaped, so no part of
    it is parsed as mathtext (an escaped dollar is drawn as a dollar)."""
    return printable(text).replace("$", r"\$")


def format_value(value: Any) -> str:
    """Numbers at a precision a table can be read at; missing values as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        if abs(value) < 10:
            return f"{value:.4f}"
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table (first column left-aligned, numbers right-aligned); text
    from run files is shown ``printable`` (no escape sequences, one line per row)."""
    cells = [[printable(h) for h in headers]] + [[printable(format_value(v)) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
