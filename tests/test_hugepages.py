"""The CLI asks PyTorch for huge pages only where it still can, and never overrides the user."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, sys\n{before}from tempdistill.app.hugepages import prefer_huge_pages\nprint(prefer_huge_pages(), os.environ.get('THP_MEM_ALLOC_ENABLE'))"


def _probe(before: str = "", **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], capture_output=True, text=True,
                            env=environment, timeout=120, check=True)
    return result.stdout.strip()


def test_set_before_torch_allocates():
    assert _probe() == "True 1"


def test_too_late_once_torch_is_imported():
    assert _probe("import torch\n") == "False None"


def test_a_users_own_setting_is_kept():
    assert _probe(THP_MEM_ALLOC_ENABLE="0") == "False 0"


def test_the_cli_and_demo_do_not_import_torch_before_asking():
    code = "import sys, tempdistill.app.cli, tempdistill.app.demo; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip() == "False"
