"""`tempdistill entropy CONFIG --temperatures ... --plot PATH`: the teacher's soft-label entropy vs T."""

from __future__ import annotations

import math
from typing import List

import pytest

from tempdistill.app.cli import main
from tempdistill.config import load_config
from tempdistill.information import entropy_summary
from tempdistill.runner import prepare_teacher
from tempdistill.core.training import batched_forward

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table_rows(stdout: str) -> List[List[float]]:
    """The numeric rows of the table (after the header and the dashed rule)."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip() and set(line.replace(" ", "")) == {"-"})
    header = lines[rule - 1].split()
    assert header[:3] == ["T", "entropy_mean", "entropy_std"], header
    rows = []
    for line in lines[rule + 1 :]:
        parts = line.split()
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            break
    return rows


def test_entropy_table_and_plot(tiny_config, tmp_path, capsys):
    plot = tmp_path / "plots" / "entropy.png"
    rc = main(["entropy", str(tiny_config), "--temperatures", "1", "2", "4", "8", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = table_rows(out)
    assert [r[0] for r in rows] == [1.0, 2.0, 4.0, 8.0]
    means = [r[1] for r in rows]
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert all(0 <= r[3] <= 100 for r in rows)
    assert all(r[3] == pytest.approx(100 * r[1] / math.log(10), abs=0.02) for r in rows)
    assert plot.is_file() and plot.read_bytes()[:8] == PNG_MAGIC
    assert str(plot) in out

    # The numbers are the teacher's on the validation split (choosing T never looks at test data).
    split, teacher, _ = prepare_teacher(load_config(tiny_config))
    logits = batched_forward(teacher, split.x_val)
    for row in rows:
        assert row[1] == pytest.approx(entropy_summary(logits, row[0])["mean"], abs=1e-4)


def test_entropy_default_plot_path(make_config, tmp_path, capsys):
    config = make_config({"name": "ent"}, name="ent.yaml")
    assert main(["entropy", str(config), "--temperatures", "1", "16"]) == 0
    out = capsys.readouterr().out
    assert len(table_rows(out)) == 2
    plot = tmp_path / "runs" / "ent-entropy.png"
    assert plot.is_file() and plot.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf"])
def test_bad_temperature_exits_2(bad, tiny_config, tmp_path, capsys):
    plot = tmp_path / "bad.png"
    rc = main(["entropy", str(tiny_config), "--temperatures", "2", bad, "--plot", str(plot)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2
    assert len(lines) == 1 and "--temperatures" in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert not plot.exists()
    assert captured.out == ""


def test_non_numeric_temperature_is_a_usage_error(tiny_config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["entropy", str(tiny_config), "--temperatures", "warm"])
    assert exit_info.value.code == 2
    assert "--temperatures" in capsys.readouterr().err


def test_bad_temperature_subprocess_no_traceback(tiny_config, tmp_path, cli_subprocess):
    plot = tmp_path / "bad.png"
    proc = cli_subprocess(["entropy", str(tiny_config), "--temperatures", "1", "0", "--plot", str(plot)])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--temperatures" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not plot.exists()


def test_entropy_missing_config_exits_2(tmp_path, capsys):
    rc = main(["entropy", str(tmp_path / "nope.yaml"), "--temperatures", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "config" in err
