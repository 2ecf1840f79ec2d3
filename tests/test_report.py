"""`tempdistill report`: curves for every run, spike rasters for spiking runs, one page."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from tempdistill.app.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_writes_figures_and_page(make_config, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs-out"
    dense = make_config({"name": "rep-dense"}, name="dense.yaml")
    spiking = make_config(
        {"name": "rep-snn", "student": {"backend": "snntorch", "hidden": [8], "steps": 6},
         "record": {"traces": {"every": 1, "samples": 2}}},
        name="snn.yaml",
    )
    for config in (dense, spiking):
        assert main(["run", str(config), "--out", str(runs), "--quiet"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    page = (out / "index.md").read_text()
    assert "rep-dense" in page and "rep-snn" in page
    images = [line[line.index("(") + 1 : -1] for line in page.splitlines() if line.startswith("![")]
    assert "val_accuracy.png" in images and "temperature.png" in images
    assert any(name.startswith("raster-") for name in images), "a spiking run with traces gets a raster"
    assert "spikes_per_sample.png" in images
    for name in images:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    # the same as a web page: a real table, every referenced file present
    page_html = (out / "index.html").read_text()
    parsed = PageParser()
    parsed.feed(page_html)
    assert parsed.tables == 1 and parsed.rows == 3  # header + one row per run
    assert set(images) <= set(parsed.images) and "score-vs-energy.png" in parsed.images
    for name in parsed.images:
        assert not name.startswith(("/", "http")) and (out / name).read_bytes()[:8] == PNG_MAGIC


class PageParser(HTMLParser):
    """Counts tables and rows and collects image sources, as a browser would load them."""

    def __init__(self) -> None:
        super().__init__()
        self.tables, self.rows, self.images = 0, 0, []

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        self.rows += tag == "tr"
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_report_page_draws_groups_of_seeds_as_mean_and_spread(make_config, tmp_path: Path) -> None:
    runs = tmp_path / "seeds"
    config = make_config({"distill": {"epochs": 2}})
    assert main(["sweep", str(config), "--grid", "distill.alpha=0,0.9", "--seeds", "0-1", "--out", str(runs),
                 "--quiet"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    page = PageParser()
    page.feed((out / "index.html").read_text())
    for name in ("groups-val_accuracy.png", "groups-temperature.png", "groups-teacher_entropy.png"):
        assert name in page.images and (out / name).is_file()
    assert "paired differences" in (out / "index.html").read_text()


def test_report_without_runs_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run files" in err[0]
