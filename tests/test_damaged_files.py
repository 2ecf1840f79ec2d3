"""Every reader survives a bad run file: damaged or hostile files are refused with one line
naming the file (exit 2), text from a file is shown inert, and sizes a file declares are
checked before anything is read.

The corpus is made at test time: one small real spiking run (traces, a saved student, a
``.pt`` export), copied and damaged with h5py one way per case.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path
from typing import Callable, Dict, List

import h5py
import numpy as np
import pytest
import torch

from tempdistill.record import journal
from tempdistill.app.cli import main
from tempdistill.record.export import load_predictor
from tempdistill.record.run_file import FORMAT_VERSION, read_run
from tempdistill.analysis.comparison import runs_frame
from tempdistill.record.checks import RunFileError
from tempdistill.text import markdown, plot_label, printable

REPO = Path(__file__).resolve().parents[1]
READERS = ("show", "compare", "report", "export")


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished spiking run with traces of 4 probes and its student."""
    import yaml

    from conftest import TINY_CONFIG, _merge  # pytest puts tests/ on the path for its conftest

    root = tmp_path_factory.mktemp("good")
    config = _merge(TINY_CONFIG, {
        "name": "good", "student": {"backend": "snntorch", "hidden": [8], "steps": 4},
        "distill": {"epochs": 2}, "record": {"dir": str(root / "runs"), "traces": {"every": 1, "samples": 4}},
    })
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(root / "config.yaml"), "--quiet"]) == 0
    (path,) = (root / "runs").glob("*.h5")
    return path


def _cli(args: List[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _read_with(command: str, path: Path, out: Path) -> List[str]:
    return {
        "show": ["show", str(path)],
        "compare": ["compare", str(path)],
        "report": ["report", str(path), "--out", str(out / "report")],
        "export": ["export", str(path), "--format", "pt", "--out", str(out / "student.pt")],
    }[command]


@pytest.fixture
def no_large_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test that reads any dataset declaring more than 10 million elements: the
    check must refuse from the declared shape, never by reading (allocating) it."""
    original = h5py.Dataset.__getitem__

    def guarded(self: h5py.Dataset, key):  # type: ignore[no-untyped-def]
        if self.size > 10_000_000:
            raise AssertionError(f"read {self.name} of declared shape {self.shape}")
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", guarded)


# ---------------------------------------------------------------- the damages
def _replace(f: h5py.File, name: str, **dataset) -> None:
    del f[name]
    f.create_dataset(name, **dataset)


def _config(value: object) -> Callable[[h5py.File], None]:
    def damage(f: h5py.File) -> None:
        if isinstance(value, str):
            _replace(f, "config", data=value, dtype=h5py.string_dtype())
        else:
            _replace(f, "config", data=value)
    return damage


def _huge_series(f: h5py.File) -> None:
    """/metrics/loss declared with 4e9 entries: a chunked, compressed dataset with no chunk
    written holds almost nothing on disk."""
    _replace(f, "metrics/loss", shape=(4_000_000_000,), maxshape=(None,), chunks=(1 << 16,), dtype=np.float64,
             compression="gzip")


def _huge_traces(f: h5py.File) -> None:
    epoch = sorted(f["traces"], key=int)[-1]
    _replace(f, f"traces/{epoch}/hidden0/spikes", shape=(16, 1_000_000, 1000), chunks=(1, 1000, 1000),
             dtype=np.uint8, compression="gzip")


def _wrong_weight(f: h5py.File) -> None:
    name = next(n for n, d in f["student"].items() if isinstance(d, h5py.Dataset) and d.ndim == 2)
    shape = f["student"][name].shape
    _replace(f, f"student/{name}", data=np.zeros((shape[0] + 1, shape[1]), dtype=np.float32))


def _journal_without_kind(f: h5py.File) -> None:
    f.attrs["journal"] = "00ff"
    journal_path = Path(f.filename).with_name(f".{Path(f.filename).name}.00ff.journal")
    journal_path.write_bytes(journal.encode({"epoch": 2, "step": 0, "series": []}, [np.zeros(0)]))


def _attr(name: str, value: object, group: str = "/") -> Callable[[h5py.File], None]:
    def damage(f: h5py.File) -> None:
        f[group].attrs[name] = value
    return damage


RAW = {  # the bytes of the file itself
    "empty": lambda data: b"",
    "garbage": lambda data: b"\x89HDF not really " * 64,
    "truncated": lambda data: data[: len(data) // 2],
}

DAMAGES: Dict[str, Callable[[h5py.File], None]] = {
    "journal name with ../": _attr("journal", "../../outside"),
    "config an int array": _config(np.arange(4)),
    "config a JSON list": _config("[1, 2, 3]"),
    "config not JSON": _config("{name: not json"),
    "journal record without kind": _journal_without_kind,
    "student options not a JSON object": _attr("options", "[\"hidden\"]", "student"),
    "status an int": _attr("status", 3),
    "status with markup": _attr("status", "<b>complete</b>"),
    "series of 4e9 entries": _huge_series,
    "traces of (16, 1e6, 1000)": _huge_traces,
}


def _damaged(good: Path, tmp_path: Path, case: str) -> Path:
    path = tmp_path / "damaged.h5"
    if case in RAW:
        path.write_bytes(RAW[case](good.read_bytes()))
    else:
        shutil.copyfile(good, path)
        with h5py.File(path, "a") as f:
            (DAMAGES | {"weight of the wrong shape": _wrong_weight})[case](f)
    return path


def _assert_one_line_refusal(code: int, err: str, path: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert str(path) in err, err
    assert printable(err.rstrip("\n")) == err.rstrip("\n")


# ---------------------------------------------------------------- every reader refuses cleanly
@pytest.mark.parametrize("case", [*RAW, *DAMAGES])
def test_every_cli_reader_refuses_a_damaged_file_in_one_line(good_run, tmp_path, capsys, no_large_reads, case):
    path = _damaged(good_run, tmp_path, case)
    for command in READERS:
        code, out, err = _cli(_read_with(command, path, tmp_path), capsys)
        _assert_one_line_refusal(code, err, path)
        assert out == "", (command, out)


@pytest.mark.parametrize("case", [*RAW, *DAMAGES])
def test_read_run_and_runs_frame_refuse_a_damaged_file(good_run, tmp_path, no_large_reads, case):
    path = _damaged(good_run, tmp_path, case)
    for read in (read_run, lambda p: runs_frame([p])):
        with pytest.raises(RunFileError) as caught:
            read(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_declared_size_is_refused_with_its_field(good_run, tmp_path, capsys, no_large_reads):
    path = _damaged(good_run, tmp_path, "series of 4e9 entries")
    assert path.stat().st_size < 2 * good_run.stat().st_size  # the damage is in what it declares
    code, _, err = _cli(["show", str(path)], capsys)
    assert code == 2 and "/metrics/loss" in err and "4,000,000,000" in err


def test_a_weight_of_the_wrong_shape_is_refused_by_export_only(good_run, tmp_path, capsys):
    path = _damaged(good_run, tmp_path, "weight of the wrong shape")
    for command in ("show", "compare", "report"):
        assert _cli(_read_with(command, path, tmp_path), capsys)[0] == 0, command
    code, _, err = _cli(_read_with("export", path, tmp_path), capsys)
    _assert_one_line_refusal(code, err, path)
    assert "/student/" in err and "shape" in err


def test_traces_are_read_only_when_asked(good_run, tmp_path, no_large_reads):
    """show and compare never read /traces: a file whose traces would not fit is refused at
    open (it does not hold what the format promises), and a good file's traces are read per
    epoch, on demand."""
    run = read_run(good_run)
    assert sorted(run["traces"]) == [0, 1]
    assert run["traces"][1]["hidden0"]["spikes"].shape[0] == 4


# ---------------------------------------------------------------- exports
@pytest.fixture(scope="module")
def good_export(good_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "student.pt"
    assert main(["export", str(good_run), "--format", "pt", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("case", ["without backend", "not a dict", "wrong shape", "options a list", "garbage"])
def test_load_predictor_refuses_a_damaged_export(good_export, tmp_path, case):
    saved = torch.load(good_export, weights_only=True)
    path = tmp_path / "bad.pt"
    if case == "garbage":
        path.write_bytes(b"PK\x03\x04 not a checkpoint")
    else:
        if case == "without backend":
            del saved["backend"]
        elif case == "not a dict":
            saved = [saved]
        elif case == "wrong shape":
            name = next(k for k, v in saved["state_dict"].items() if v.ndim == 2)
            rows, columns = saved["state_dict"][name].shape
            saved["state_dict"][name] = torch.zeros(rows + 1, columns)
        elif case == "options a list":
            saved["options"] = ["hidden"]
        torch.save(saved, path)
    with pytest.raises(RunFileError) as caught:
        load_predictor(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_good_export_still_loads(good_export):
    predictor = load_predictor(good_export)
    assert predictor.predict(np.zeros((2, predictor.facts["input_dim"]))).shape == (2,)


@pytest.fixture(scope="module")
def good_nir(good_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "student.nir"
    assert main(["export", str(good_run), "--format", "nir", "--out", str(out)]) == 0
    return out


def _damaged_nir(good: Path, path: Path, case: str) -> None:
    """A copy of ``good`` damaged one way: its bytes, its graph, or the description beside it."""
    import nir

    if case == "garbage":
        path.write_bytes(b"\x89HDF\r\n\x1a\n not a graph")
        return
    if case == "no graph":
        with h5py.File(path, "w") as f:
            f.attrs["note"] = "an HDF5 file without a NIR node"
        return
    graph = nir.read(str(good))
    facts = json.loads(graph.metadata["tempdistill"])
    if case == "metadata not JSON":
        graph.metadata["tempdistill"] = "{not json"
    elif case == "steps absurd":
        facts["describe"]["steps"] = 10**9
    elif case == "encoder unknown":
        facts["describe"]["encoder"] = "os.system"
    elif case == "weight wrong shape":
        name = next(k for k, node in graph.nodes.items() if isinstance(node, nir.Affine))
        weight = graph.nodes[name].weight
        graph.nodes[name] = nir.Affine(weight=np.zeros((weight.shape[0] + 3, weight.shape[1]), dtype=np.float32),
                                       bias=np.zeros(weight.shape[0] + 3, dtype=np.float32))
    if case != "metadata not JSON":
        graph.metadata["tempdistill"] = json.dumps(facts)
    nir.write(str(path), graph)


@pytest.mark.parametrize("case", ["garbage", "no graph", "metadata not JSON", "steps absurd", "encoder unknown",
                                  "weight wrong shape"])
def test_load_predictor_refuses_a_damaged_nir_graph(good_nir, tmp_path, case):
    path = tmp_path / "bad.nir"
    _damaged_nir(good_nir, path, case)
    with pytest.raises(RunFileError) as caught:
        load_predictor(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_good_nir_graph_still_loads_and_agrees_with_its_pt(good_nir, good_export):
    rows = np.random.default_rng(0).normal(size=(16, load_predictor(good_export).facts["input_dim"]))
    np.testing.assert_array_equal(load_predictor(good_nir).predict(rows), load_predictor(good_export).predict(rows))


# ---------------------------------------------------------------- text from a file is inert
def _renamed(good: Path, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "named.h5"
    shutil.copyfile(good, path)
    with h5py.File(path, "a") as f:
        config = json.loads(f["config"][()])
        config["name"] = name
        _replace(f, "config", data=json.dumps(config), dtype=h5py.string_dtype())
        f.attrs["warnings"] = json.dumps(["warning: \x1b]0;owned\x07 title"])
    return path


def _control_characters(text: str) -> List[str]:
    return [ch for ch in text if unicodedata.category(ch) == "Cc" and ch != "\n"]


def test_show_and_compare_print_no_escape_sequences(good_run, tmp_path, capsys):
    path = _renamed(good_run, tmp_path, "red\x1b[31m\x1b[2J\rover\u202ewritten\x9b1m")
    for command in ("show", "compare"):
        code, out, err = _cli([command, str(path)], capsys)
        assert code == 0 and err == ""
        assert _control_characters(out) == [] and "\u202e" not in out, command
        assert "redoverwritten" in out.replace(" ", "") or "red overwritten" in out


def test_report_page_escapes_text_and_draws_math_like_names(good_run, tmp_path, capsys):
    path = _renamed(good_run, tmp_path, "frac-$\\frac{$-<script>x</script>-```-[a](http://b)")
    out = tmp_path / "report"
    code, stdout, err = _cli(["report", str(path), "--out", str(out)], capsys)
    assert code == 0 and err == "", err
    page = (out / "index.md").read_text()
    fence = next(line for line in page.splitlines() if line.startswith("```"))
    assert len(fence) > 3  # longer than the run of backticks in the name, which cannot close it
    html_page = (out / "index.html").read_text()
    assert "<script>" not in html_page and "&lt;script&gt;" in html_page
    figures = [line[line.index("(") + 1 : -1] for line in page.splitlines() if line.startswith("![")]
    assert "score-vs-energy.png" in figures and any(f.startswith("raster-") for f in figures)
    for name in figures:
        assert (out / name).stat().st_size > 1000


def test_markdown_lists_show_paths_and_status_literally(tmp_path):
    assert markdown("a_b*c* [x](y) <b> $x$ `c`") == r"a\_b\*c\* \[x\]\(y\) &lt;b&gt; \$x\$ \`c\`"
    assert plot_label("$\\frac{$") == "\\$\\frac{\\$"
    assert printable("a\x1b[31mb\tc\nd\x07") == "ab c d"


# ---------------------------------------------------------------- probes tied to their inputs
def test_traces_record_their_probe_rows_and_labels(good_run):
    from sklearn.datasets import load_digits  # the tiny config's data

    run = read_run(good_run)
    assert run["format_version"] == FORMAT_VERSION == 5
    for epoch in run["traces"]:
        traces = run["traces"][epoch]
        np.testing.assert_array_equal(traces["probe_rows"], np.arange(4))
        assert traces["probe_labels"].shape == (4,)
        assert set(traces["probe_labels"]) <= set(load_digits().target)
        assert traces["hidden0"]["spikes"].shape[0] == 4


# run_v2_reference.h5 is the recorder's reference file (synthetic: no student options to export).
@pytest.mark.parametrize("fixture,exportable", [("run_v1.h5", True), ("run_v2_reference.h5", False), ("run_v3.h5", True)])
def test_older_files_still_read_show_and_report(fixture, exportable, tmp_path, capsys):
    path = REPO / "tests" / "data" / fixture
    run = read_run(path)
    assert run["format_version"] < FORMAT_VERSION and run["traces"]
    assert "probe_rows" not in run["traces"][max(run["traces"])]
    commands = [["show", str(path)], ["compare", str(path)], ["report", str(path), "--out", str(tmp_path / "report")]]
    if exportable:
        commands.append(["export", str(path), "--format", "pt", "--out", str(tmp_path / "student.pt")])
    for args in commands:
        code, _, err = _cli(args, capsys)
        assert code == 0 and err == "", err
