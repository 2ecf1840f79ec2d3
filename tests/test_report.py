"""`tempdistill report`: curves for every run, spike rasters for spiking runs, one page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempdistill.cli import main

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


def test_report_without_runs_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run files" in err[0]
