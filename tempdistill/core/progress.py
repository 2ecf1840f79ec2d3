"""Progress on stderr: a tqdm bar on a terminal, plain lines in a file or a pipe.

A tqdm bar redraws itself with carriage returns; captured by ``2> run.log``, ``| tee`` or a
job scheduler it becomes one line of many kilobytes that no pager or ``grep`` reads well. Off
a terminal, progress is instead written as whole lines, at most ``lines`` of them over the
total, each with the figures the bar would show.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """The part of tqdm's interface the CLI uses (``update``, ``set_postfix``, ``close``),
    writing ``description: 3/40 epoch  T=4.00`` lines at about ``lines`` evenly spaced points
    of the total, the last one always."""

    def __init__(self, total: int, description: str, unit: str, lines: int, stream: TextIO) -> None:
        self.total, self.description, self.unit, self.stream = total, description, unit, stream
        self.every = max(1, total // max(1, lines))
        self.done, self.next_line, self.postfix = 0, self.every, ""

    def set_postfix(self, **figures: Any) -> None:
        self.postfix = "  ".join(f"{key}={value}" for key, value in figures.items())

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.next_line or self.done >= self.total:
            while self.next_line <= self.done:
                self.next_line += self.every
            line = f"{self.description}: {self.done:,}/{self.total:,} {self.unit}"
            print(f"{line}  {self.postfix}" if self.postfix else line, file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to tidy: every line was written whole."""


def progress_bar(total: int, description: str, unit: str, lines: int, stream: Optional[TextIO] = None,
                 mininterval: float = 0.1) -> Any:
    """A tqdm bar when ``stream`` (stderr by default) is a terminal, else ``PlainProgress``
    writing at most about ``lines`` lines."""
    stream = stream if stream is not None else sys.stderr
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(total=total, desc=description, unit=unit, file=stream, mininterval=mininterval)
    return PlainProgress(total, description, unit, lines, stream)
