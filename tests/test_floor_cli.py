"""`tempdistill floor CONFIG_OR_RUN --temperatures ... --steps ...`: one table per spiking readout."""

from __future__ import annotations

from typing import Dict, List

import pytest

from spiking.floor import kl_floor
from spiking.theta0 import auto_theta0
from tempdistill.app.cli import main
from tempdistill.config import load_config
from tempdistill.runner import prepare_classifier


def tables(stdout: str) -> Dict[str, List[List[str]]]:
    """readout -> its table's rows (cells as text), read after each 'readout NAME:' line."""
    found: Dict[str, List[List[str]]] = {}
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("readout "):
            name = line.split()[1].rstrip(":")
            rows = []
            for row in lines[i + 3:]:
                if not row.strip():
                    break
                rows.append(row.split())
            found[name] = rows
    return found


def test_floor_tables(tiny_config, capsys):
    rc = main(["floor", str(tiny_config), "--temperatures", "1", "4", "16", "--steps", "4", "25"])
    out = capsys.readouterr().out
    assert rc == 0, out
    found = tables(out)
    assert set(found) == {"count", "count_membrane", "li"}
    assert [r[0] for r in found["count"]] == ["1", "4", "16"]
    assert all(len(r) == 4 for rows in found.values() for r in rows)  # T, N=4, N=25, uniform
    assert all(r[1:3] == ["0", "0"] for r in found["li"])
    count = [[float(c) for c in r[1:3]] for r in found["count"]]
    membrane = [[float(c) for c in r[1:3]] for r in found["count_membrane"]]
    assert all(m <= c for mr, cr in zip(membrane, count) for m, c in zip(mr, cr))

    # The numbers are spiking.floor's on the teacher's validation logits, θ0 from its training logits.
    _, teacher = prepare_classifier(load_config(tiny_config))
    theta0 = auto_theta0(teacher.logits("train"))
    assert f"θ0 = {theta0:.4g}" in out
    expected = kl_floor(teacher.logits("val"), 4.0, 25, theta0, "count")
    assert float(found["count"][1][2]) == pytest.approx(expected, rel=5e-3, abs=1e-12)


def test_floor_uses_a_numeric_theta0(tiny_config, capsys):
    assert main(["floor", str(tiny_config), "--temperatures", "2", "--steps", "8", "--set", "student.backend=snntorch",
                 "--set", "student.theta0=7.5"]) == 0
    assert "θ0 = 7.5 (student.theta0)" in capsys.readouterr().out


def test_floor_reads_a_run_file(tiny_config, tmp_path, capsys):
    assert main(["run", str(tiny_config), "--quiet", "--out", str(tmp_path / "runs")]) == 0
    run = next((tmp_path / "runs").glob("*.h5"))
    capsys.readouterr()
    assert main(["floor", str(run), "--temperatures", "1", "--steps", "8"]) == 0
    from_run = capsys.readouterr().out
    assert main(["floor", str(tiny_config), "--temperatures", "1", "--steps", "8"]) == 0
    assert tables(capsys.readouterr().out) == tables(from_run)


@pytest.mark.parametrize("args,name", [
    (["--temperatures", "0"], "--temperatures"), (["--temperatures", "nan"], "--temperatures"),
    (["--steps", "0"], "--steps"),
])
def test_bad_input_exits_2_with_one_line(tiny_config, capsys, args, name):
    rc = main(["floor", str(tiny_config), *args])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and name in lines[0], captured.err
    assert captured.out == ""


def test_missing_source_exits_2(tmp_path, capsys):
    assert main(["floor", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err


def test_help_says_the_teacher_is_rebuilt(capsys):
    with pytest.raises(SystemExit):
        main(["floor", "--help"])
    assert "rebuilt" in capsys.readouterr().out
