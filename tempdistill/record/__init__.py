"""The run file: writing it (with its crash-safe journal), checking and reading it back (``Run``),
exporting and predicting with its student.

``read_run`` and ``consolidate`` are public here (``tempdistill.record.read_run(path)``); the
modules below are where they and everything else live.
"""

from tempdistill.record.run_file import consolidate, read_run

__all__ = ["consolidate", "read_run"]
