"""Stopping a run or a sweep on request (Ctrl-C, SIGTERM from a job scheduler) without losing it.

A run cannot stop at an arbitrary instruction and stay useful: the epoch in flight would be
half-trained and unrecorded. So the first SIGINT/SIGTERM only *asks*: the training loop reads
the request between epochs, commits the epoch it was in, saves the student as it is and
closes the record as ``interrupted``. A second signal means "now": it raises
``KeyboardInterrupt`` at once (the run still records ``interrupted`` on its way out).
Outside a training loop (while the data or a teacher is being prepared) there is nothing to
save, so the first signal already stops at once.

A sweep shares one request with its worker processes through a multiprocessing ``Event``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


class StopRequest:
    """A flag that signal handlers (or another process, through ``event``) raise.

    ``deferred`` is true while a loop promises to read the flag between epochs; only then does
    a first signal wait for the loop instead of stopping at once.
    """

    def __init__(self, event: Optional[Any] = None) -> None:
        self._event = event
        self._requested = False
        self.reason = ""
        self.deferred = False

    def request(self, reason: str) -> None:
        self._requested = True
        self.reason = self.reason or reason
        if self._event is not None:
            self._event.set()

    def attach(self, event: Any) -> None:
        """Share this request with other processes from now on (a multiprocessing Event)."""
        self._event = event
        if self._requested:
            event.set()

    def requested(self) -> bool:
        if not self._requested and self._event is not None and self._event.is_set():
            self._requested, self.reason = True, self.reason or "stop requested by the sweep"
        return self._requested

    @contextlib.contextmanager
    def deferring(self) -> Iterator["StopRequest"]:
        """Within the block, a first signal waits for the loop to read the request."""
        previous, self.deferred = self.deferred, True
        try:
            yield self
        finally:
            self.deferred = previous


NEVER = StopRequest()  # for callers that never stop early (tests, the library used in a notebook)


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest, always_defer: bool = False) -> Iterator[StopRequest]:
    """Install SIGINT/SIGTERM handlers that feed ``stop``; restore the old ones afterwards.

    ``always_defer`` (sweep workers) never raises from a signal: the worker records its run
    and returns, and the sweep decides what happens next. Only the main thread can hold
    signal handlers; elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        first = not stop.requested()
        stop.request(f"interrupted by {name}")
        if always_defer:
            return
        if not first or not stop.deferred:
            raise KeyboardInterrupt(name)

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Interrupted(Exception):
    """A run or sweep ended early on request; carries what was kept (if anything)."""

    def __init__(self, message: str, path: Optional[Any] = None) -> None:
        super().__init__(message)
        self.path = path


def interruption_line(exc: BaseException) -> str:
    """One line for a user: why the work stopped and which partial run file was kept."""
    detail = str(exc) if isinstance(exc, Interrupted) else "interrupted"
    kept = getattr(exc, "path", None)
    return detail + (f"; partial run kept: {kept}" if kept else "")
