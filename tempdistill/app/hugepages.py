"""Large tensors on transparent huge pages, for the processes this package's commands start.

Spiking students work on whole (steps, batch, neurons) tensors: 52 MB at 100 steps ×
128 samples × 1024 neurons. On Linux every fresh 4 KiB page of such a block costs a page
fault when first written; measured on 2 cores, allocating and filling 52 MB took 68 ms with
4 KiB pages and 12 ms with huge pages. The fused engine reuses its blocks across passes
(``spiking.workspace``); the first pass, the reference engine and evaluation still allocate.
PyTorch's CPU allocator asks the kernel for huge pages (2 MiB-aligned, ``madvise``) for blocks
of 2 MiB and more when ``THP_MEM_ALLOC_ENABLE=1`` is set before its first allocation.

Only entry points call ``prefer_huge_pages`` (the CLI and the demo, whose child processes
inherit the setting); importing the library changes nothing. A user's own script can export
the variable itself. A value the user set is kept.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "THP_MEM_ALLOC_ENABLE"


def prefer_huge_pages() -> bool:
    """Ask for huge pages if torch has not allocated yet; True if the setting is in effect."""
    if "torch" not in sys.modules:
        os.environ.setdefault(VARIABLE, "1")
    return os.environ.get(VARIABLE) == "1"
