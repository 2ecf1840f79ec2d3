"""The documentation: `make docs` builds without a warning, and no relative link is dead.

The build runs MkDocs as `make docs` does (strict: a warning from MkDocs, a snippet include or
mkdocstrings/griffe on a docstring fails it), into a temporary directory; it takes seconds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(path: Path) -> Iterator[Tuple[str, Path]]:
    """(link as written, file it points to) for every relative link outside code."""
    text = CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # http(s), mailto, ...; an anchor on the same page (MkDocs checks those)
        yield target, (path.parent / target.split("#", 1)[0]).resolve()


def test_docs_build_strictly_without_warnings(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("MkDocs is not installed: pip install -e '.[docs]' (make install does)")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = result.stdout + result.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0 and not warnings, log[-5000:]
    # Every page was built, snippet includes were resolved, the API reference was generated.
    for page in PAGES:
        html = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert html.is_file(), f"{page.name} was not built"
        assert "--8&lt;--" not in html.read_text(encoding="utf-8") and "--8<--" not in html.read_text(encoding="utf-8"), (
            f"{page.name}: a snippet include was left unresolved")
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("tempdistill.losses.kd_loss", "tempdistill.record.export.load_predictor", "tempdistill.record.read_run",
                 "tempdistill.config.load_config"):
        assert f'id="{name}"' in api, f"{name} missing from the API reference"


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(page: Path) -> None:
    dead = [target for target, path in relative_links(page) if not path.exists()]
    assert not dead, f"{page.relative_to(ROOT)}: dead links {dead}"
    if page.parent == DOCS:  # the site holds docs/ only: a page cannot link out of it
        outside = [target for target, path in relative_links(page) if DOCS not in path.parents]
        assert not outside, f"{page.relative_to(ROOT)}: links outside docs/ {outside}"


def test_link_check_sees_links() -> None:
    """The link check reads the README's links to the pages (so it cannot pass by finding none)."""
    targets = {target for target, _ in relative_links(ROOT / "README.md")}
    assert {"docs/configuration.md", "docs/files-from-others.md", "experiments/README.md"} <= targets


def test_readme_stays_a_front_page() -> None:
    """The README keeps what a newcomer needs; the rest lives in docs/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
