"""A teacher of the user's own: TorchScript, factory + state dict, a module given in Python, and
stored logits, each end to end on digits; the raw-input rule; the checks before training; files
that are refused without running anything from them (docs/your-teacher.md)."""

from __future__ import annotations

import hashlib
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tempdistill.app.cli import main
from tempdistill.config import ConfigError, DataConfig, config_from_mapping
from tempdistill.tasks.data import load_split, raw_split
from tempdistill.record import read_run
from tempdistill.runner import execute, prepare_classifier
from tempdistill.tasks.sources import ArrayData, InMemory, StoredLogits
from tempdistill.tasks.teacher_files import is_torchscript
from tempdistill.tasks.teacher_sources import state_dict_sha256

# The user's own code: a teacher trained on raw digits features (0…16) that standardises them
# itself, and a factory for it. Written to a folder at test time and imported from there.
USER_MODULE = "user_teacher_code"
USER_SOURCE = '''
import torch
from torch import nn


class ScaledMLP(nn.Module):
    """Reads raw features and standardises them with its own statistics."""

    def __init__(self, features: int = 64, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.net = nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.offset) / self.scale)


def make(features: int = 64, width: int = 32, classes: int = 10) -> ScaledMLP:
    return ScaledMLP(features, width, classes)


def not_a_module() -> int:
    return 3
'''


@pytest.fixture(scope="module")
def user_code(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("user_code")
    (folder / f"{USER_MODULE}.py").write_text(USER_SOURCE)
    sys.path.insert(0, str(folder))
    sys.modules.pop(USER_MODULE, None)
    import importlib

    yield importlib.import_module(USER_MODULE)
    sys.path.remove(str(folder))
    sys.modules.pop(USER_MODULE, None)


@pytest.fixture(scope="module")
def raw_teacher(user_code) -> nn.Module:
    """A ScaledMLP trained on the raw training rows of digits (seed 0's split), full batch."""
    raw = raw_split(DataConfig(name="digits"), 0)
    torch.manual_seed(0)
    model = user_code.make(width=32)
    x, y = torch.as_tensor(raw.x_train, dtype=torch.float32), torch.as_tensor(raw.y_train)
    model.offset.copy_(x.mean(0))
    model.scale.copy_(x.std(0).clamp_min(1.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(x, dtype=torch.float32)).argmax(-1).numpy() == y).mean())


@pytest.fixture(scope="module")
def raw_test_accuracy(raw_teacher) -> float:
    raw = raw_split(DataConfig(name="digits"), 0)
    return _accuracy(raw_teacher, raw.x_test, raw.y_test)


def _script(model: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.script(model).save(str(path))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(tiny_config_data: Dict[str, Any], changes: Dict[str, Any], given: InMemory = InMemory()) -> Dict[str, Any]:
    mapping = {**tiny_config_data, **changes}
    return read_run(execute(config_from_mapping(mapping), given=given, warn=lambda _: None))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _no_run_file(tmp_path: Path) -> bool:
    return not list((tmp_path / "runs").glob("*.h5")) if (tmp_path / "runs").exists() else True


# ------------------------------------------------------------------ the raw-input rule
def test_the_raw_teacher_needs_raw_inputs(raw_teacher, raw_test_accuracy):
    """The fixture the source tests rest on: fed the normalised inputs the student reads, the
    teacher is near chance, so a source that fed it those would show in its accuracy."""
    split = load_split(DataConfig(name="digits"), 0)
    normalised = _accuracy(raw_teacher, split.x_test.numpy(), split.y_test.numpy())
    assert raw_test_accuracy > 0.9
    assert normalised < 0.5


def test_own_teacher_reads_the_normalised_inputs_and_a_users_the_raw(tiny_config_data, raw_teacher):
    config = config_from_mapping(tiny_config_data)
    split, own = prepare_classifier(config)
    torch.testing.assert_close(own.logits("val"), own.network(split.x_val))  # tempdistill's own: normalised
    assert split.as_given is None  # nothing extra kept when no teacher reads it
    config = config_from_mapping({**tiny_config_data, "teacher": {"source": "module"}})
    split, users = prepare_classifier(config, given=InMemory(teacher=raw_teacher))
    raw = raw_split(config.data, config.seed)
    torch.testing.assert_close(users.logits("val"), raw_teacher(torch.as_tensor(raw.x_val, dtype=torch.float32)))
    torch.testing.assert_close(split.x_val, torch.as_tensor(split.normalizer.apply(raw.x_val), dtype=torch.float32))


# ------------------------------------------------------------------ each source end to end
def test_torchscript_teacher_under_a_pt_name_through_the_cli(make_config, raw_teacher, raw_test_accuracy, tmp_path,
                                                             capsys):
    path = _script(raw_teacher, tmp_path / "teacher.pt")  # recognised by content, not by name
    assert is_torchscript(path)
    config = make_config({"teacher": {"checkpoint": str(path)}, "student": {"backend": "snntorch", "hidden": [16],
                                                                            "steps": 4}})
    assert main(["run", str(config), "--quiet"]) == 0
    run = read_run(next((tmp_path / "runs").glob("*.h5")))
    ev = run["eval"]
    assert run["status"] == "complete"
    assert ev["teacher_source"] == "torchscript" and ev["teacher_class"] == "ScaledMLP"
    assert ev["teacher_sha256"] == _sha(path) and ev["teacher_file"] == str(path.resolve())
    assert ev["teacher_params"] == sum(p.numel() for p in raw_teacher.parameters())
    assert ev["teacher_accuracy"] == pytest.approx(raw_test_accuracy, abs=1e-6)
    assert ev["teacher_latency_ms_per_sample"] > 0
    # the tiny config's own-network keys are left unused, and the run says so
    assert any(w.startswith("teacher: teacher.backend, teacher.hidden, teacher.epochs, teacher.lr not used: a TorchScript "
                            "teacher is a teacher of your own") for w in run["warnings"]), run["warnings"]


def test_factory_teacher_with_a_state_dict(tiny_config_data, raw_teacher, raw_test_accuracy, user_code, tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save(raw_teacher.state_dict(), weights)
    run = _run(tiny_config_data, {"teacher": {"factory": f"{USER_MODULE}:make", "kwargs": {"width": 32},
                                              "checkpoint": str(weights)}})
    ev = run["eval"]
    assert ev["teacher_source"] == "factory" and ev["teacher_class"] == "ScaledMLP"
    assert ev["teacher_sha256"] == _sha(weights)
    assert ev["teacher_accuracy"] == pytest.approx(raw_test_accuracy, abs=1e-6)
    assert ev["param_ratio"] == ev["student_params"] / ev["teacher_params"]


def test_factory_kwargs_that_build_other_shapes_say_so(tiny_config_data, raw_teacher, user_code, tmp_path):
    torch.save(raw_teacher.state_dict(), tmp_path / "weights.pt")
    mapping = {**tiny_config_data, "teacher": {"factory": f"{USER_MODULE}:make", "kwargs": {"width": 48},
                                               "checkpoint": str(tmp_path / "weights.pt")}}
    with pytest.raises(ConfigError, match=r"^teacher.checkpoint: the weights do not fit the network of teacher.factory: "
                                          r"net.0.weight is \(32, 64\) in the file, \(48, 64\) here.*set teacher.kwargs"):
        execute(config_from_mapping(mapping))
    assert _no_run_file(tmp_path)


def test_module_given_in_memory(tiny_config_data, raw_teacher, raw_test_accuracy):
    run = _run(tiny_config_data, {"teacher": {"source": "module"}}, InMemory(teacher=raw_teacher))
    ev = run["eval"]
    assert ev["teacher_source"] == "module" and ev["teacher_class"] == "ScaledMLP" and "teacher_file" not in ev
    assert ev["teacher_sha256"] == state_dict_sha256(raw_teacher)
    assert ev["teacher_accuracy"] == pytest.approx(raw_test_accuracy, abs=1e-6)


def _digits_npz(path: Path, **extra: np.ndarray) -> Path:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.savez(path, X=bunch.data, y=bunch.target, **extra)
    return path


def _raw_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy()


def test_stored_logits_in_the_npz(tiny_config_data, raw_teacher, raw_test_accuracy, tmp_path):
    from sklearn.datasets import load_digits

    path = _digits_npz(tmp_path / "digits.npz", teacher_logits=_raw_logits(raw_teacher, load_digits().data))
    run = _run(tiny_config_data, {"data": {"name": "npz", "path": str(path)}, "teacher": {"source": "logits"}})
    ev = run["eval"]
    assert ev["teacher_source"] == "logits" and ev["teacher_sha256"] == _sha(path)
    # the npz's X is digits' X: the same seeded split, so the same test rows and the same accuracy
    assert ev["teacher_accuracy"] == pytest.approx(raw_test_accuracy, abs=1e-6)
    for absent in ("teacher_params", "param_ratio", "teacher_latency_ms_per_sample", "teacher_class"):
        assert absent not in ev


def test_stored_logits_follow_the_seeded_split_row_for_row(tmp_path):
    """Logits that say which row they answer come out of the split beside their rows."""
    from sklearn.datasets import load_digits

    from tempdistill.tasks.stored_logits import npz_logits, split_logits

    x = load_digits().data
    tags = np.zeros((len(x), 10))
    tags[:, 0] = np.arange(len(x))  # column 0: the row's index in X
    path = _digits_npz(tmp_path / "tagged.npz", teacher_logits=tags)
    for seed in (0, 3):
        split = load_split(DataConfig(name="npz", path=str(path), normalize="none"), seed)
        parts = split_logits(npz_logits(str(path)), split)
        for part in ("train", "val", "test"):
            rows = parts[part][:, 0].long().numpy()
            assert np.array_equal(x[rows], split.inputs(part).numpy())


def test_arrays_and_logits_given_in_memory_make_an_ordinary_run_file(tiny_config_data, raw_teacher, tmp_path, capsys):
    """No test logits: the teacher's test accuracy is absent and a warning says so; the file is
    read by show, compare, report and export like any other."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y, x_test, y_test = bunch.data[:1400], bunch.target[:1400], bunch.data[1400:], bunch.target[1400:]
    given = InMemory(data=ArrayData(torch.as_tensor(x), y, X_test=x_test, y_test=y_test),
                     logits=StoredLogits(train=_raw_logits(raw_teacher, x)))
    run = _run(tiny_config_data, {"data": {"name": "arrays"}, "teacher": {"source": "logits", "params": 2410}}, given)
    ev = run["eval"]
    assert "teacher_accuracy" not in ev and ev["teacher_val_accuracy"] > 0.9
    assert ev["teacher_params"] == 2410 and "teacher_file" not in ev
    assert any("teacher_accuracy" in w for w in run["warnings"])
    attrs = run["data_attrs"]
    assert attrs["name"] == "arrays" and len(attrs["arrays_sha256"]) == 64
    assert yaml.safe_load(attrs["arrays_shapes"]) == {"X": [1400, 64], "y": [1400], "X_test": [397, 64],
                                                      "y_test": [397]}
    path = str(run["path"])
    assert main(["show", path]) == 0 and "stored logits" in capsys.readouterr().out
    assert main(["compare", path]) == 0
    assert main(["report", path, "--out", str(tmp_path / "report")]) == 0
    assert main(["export", path, "--format", "pt", "--out", str(tmp_path / "student.pt")]) == 0


def test_the_same_arrays_give_the_same_fingerprint_and_a_trained_teacher_is_reused(tiny_config_data):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    logs: list = []
    mapping = {**tiny_config_data, "data": {"name": "arrays"}}
    runs = [read_run(execute(config_from_mapping(mapping), log=logs.append,
                             given=InMemory(data=ArrayData(X, bunch.target))))
            for X in (bunch.data, torch.as_tensor(bunch.data))]
    assert runs[0]["eval"]["teacher_source"] == "trained" and runs[1]["eval"]["teacher_source"] == "cache"
    assert runs[0]["eval"]["teacher_sha256"] == runs[1]["eval"]["teacher_sha256"]
    changed = bunch.data.copy()
    changed[0, 0] += 1
    third = read_run(execute(config_from_mapping(mapping), given=InMemory(data=ArrayData(changed, bunch.target))))
    assert third["eval"]["teacher_source"] == "trained"  # other data: another teacher


# ------------------------------------------------------------------ refused before training
def test_teacher_with_the_wrong_number_of_classes_is_one_line(make_config, user_code, raw_teacher, tmp_path, capsys):
    wrong = user_code.make(width=8, classes=9)
    path = _script(wrong, tmp_path / "nine.ts")
    assert main(["run", str(make_config({"teacher": {"checkpoint": str(path)}})), "--quiet"]) == 2
    line = _one_line(capsys)
    assert ("teacher: the TorchScript teacher ScaledMLP returned shape (2, 9) for inputs of shape (2, 64); the data "
            "has 10 classes, so it must return logits (2, 10)") in line
    assert _no_run_file(tmp_path)


def test_teacher_with_the_wrong_input_width_is_one_line(tiny_config_data, user_code):
    mapping = {**tiny_config_data, "teacher": {"source": "module"}}
    with pytest.raises(ConfigError, match=r"^teacher: the module given \(ScaledMLP\) fails on inputs of shape \(2, 64\) "
                                          r"\(RuntimeError: .*\); it must take \(n, 64\) float32 inputs"):
        execute(config_from_mapping(mapping), given=InMemory(teacher=user_code.make(features=63)))


def test_teacher_returning_a_tuple_or_nan_is_one_line(tiny_config_data):
    class Pair(nn.Module):
        def forward(self, x):
            return x[:, :10], x

    class Nan(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan"))

    mapping = {**tiny_config_data, "teacher": {"source": "module"}}
    with pytest.raises(ConfigError, match=r"^teacher: the module given \(Pair\) returned tuple"):
        execute(config_from_mapping(mapping), given=InMemory(teacher=Pair()))
    with pytest.raises(ConfigError, match=r"^teacher: Nan returned non-finite logits \(nan or inf\) for \d+ of \d+ train"):
        execute(config_from_mapping(mapping), given=InMemory(teacher=Nan()))


@pytest.mark.parametrize("logits,message", [
    (lambda n: np.full((n, 10), np.nan), r"teacher_logits holds non-finite values \(nan or inf\) in 1797 of its 1797 rows"),
    (lambda n: np.zeros((n - 1, 10)), (r"teacher_logits must have shape \(1797, 10\), one row per row of X and one "
                                       r"column per class, got \(1796, 10\)")),
    (lambda n: np.zeros((n, 9)), r"teacher_logits must have shape \(1797, 10\).*got \(1797, 9\)"),
])
def test_stored_logits_that_do_not_fit_are_one_line(make_config, tmp_path, capsys, logits, message):
    path = _digits_npz(tmp_path / "digits.npz", teacher_logits=logits(1797))
    config = make_config({"data": {"name": "npz", "path": str(path)}, "teacher": {"source": "logits"}})
    assert main(["run", str(config), "--quiet"]) == 2
    line = _one_line(capsys)
    assert line.startswith("tempdistill run: error: data.path: ")
    assert __import__("re").search(message, line), line
    assert _no_run_file(tmp_path)


def test_stored_logits_for_a_part_the_data_lacks_or_a_part_that_needs_them(tiny_config_data, tmp_path):
    from sklearn.datasets import load_digits

    x, y = load_digits().data, load_digits().target
    mapping = {**tiny_config_data, "data": {"name": "arrays"}, "teacher": {"source": "logits"}}
    with pytest.raises(ConfigError, match=r"^given.logits: StoredLogits.val is given but the data has no X_val"):
        execute(config_from_mapping(mapping), given=InMemory(data=ArrayData(x, y), logits=StoredLogits(
            np.zeros((1797, 10)), val=np.zeros((10, 10)))))
    with pytest.raises(ConfigError, match=r"^given.logits: StoredLogits.val is required: the val rows are X_val, and "
                                          r"every epoch is measured against them"):
        execute(config_from_mapping(mapping), given=InMemory(data=ArrayData(x[:1500], y[:1500], X_val=x[1500:],
                                                                            y_val=y[1500:]),
                                                             logits=StoredLogits(np.zeros((1500, 10)))))


def test_a_pickled_module_is_refused_naming_the_ways_that_work(make_config, raw_teacher, tmp_path, capsys):
    torch.save(raw_teacher, tmp_path / "whole.pt")  # torch.save(model): a pickle of the class
    assert not is_torchscript(tmp_path / "whole.pt")
    assert main(["run", str(make_config({"teacher": {"checkpoint": str(tmp_path / "whole.pt")}})), "--quiet"]) == 2
    line = _one_line(capsys)
    assert "is not a tempdistill checkpoint: it holds pickled Python objects" in line
    assert "TorchScript" in line and "teacher.factory" in line and "teacher.source: logits" in line


class _Payload:
    """Unpickling this creates a file: the proof that nothing ran is that the file is absent."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["checkpoint", "factory weights"])
def test_nothing_runs_from_a_pickled_file(tiny_config_data, user_code, tmp_path, how):
    marker = tmp_path / "ran"
    torch.save(_Payload(marker), tmp_path / "payload.pt")
    teacher = ({"checkpoint": str(tmp_path / "payload.pt")} if how == "checkpoint"
               else {"factory": f"{USER_MODULE}:make", "checkpoint": str(tmp_path / "payload.pt")})
    with pytest.raises(ConfigError, match="holds pickled Python objects"):
        execute(config_from_mapping({**tiny_config_data, "teacher": teacher}))
    assert not marker.exists()


def test_a_damaged_torchscript_archive_is_refused_not_crashed(make_config, raw_teacher, tmp_path, capsys):
    good = _script(raw_teacher, tmp_path / "good.ts")
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("/data.pkl"):
                data = b"\x80\x02 not a pickle"
            target.writestr(item, data)
    assert is_torchscript(damaged)
    assert main(["run", str(make_config({"teacher": {"checkpoint": str(damaged)}})), "--quiet"]) == 2
    assert f"teacher.checkpoint: {damaged} is a TorchScript archive that does not load" in _one_line(capsys)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert main(["run", str(make_config({"teacher": {"checkpoint": str(truncated)}})), "--quiet"]) == 2
    assert "cannot read" in _one_line(capsys)
    assert _no_run_file(tmp_path)


# ------------------------------------------------------------------ config and given, one line each
@pytest.mark.parametrize("changes,message", [
    ({"teacher": {"source": "torchscript"}}, "teacher.source: allowed: 'auto', 'module' or 'logits'; a TorchScript file"),
    ({"teacher": {"source": "weights"}}, "teacher.source: got 'weights'; allowed: 'auto', 'module' or 'logits'"),
    ({"teacher": {"factory": "pkg.mod:make"}}, "teacher.checkpoint: required with teacher.factory"),
    ({"teacher": {"factory": "pkg.mod:make", "checkpoint": "w.pt", "kwargs": [64]}}, "teacher.kwargs: must be a mapping"),
    ({"teacher": {"factory": "make_model", "checkpoint": "w.pt"}},
     "teacher.factory: expected an import path 'package.module:callable'"),
    ({"teacher": {"kwargs": {"width": 3}}}, "teacher.kwargs: only used with teacher.factory"),
    ({"teacher": {"source": "logits"}}, "teacher.source: 'logits' needs data.name 'npz'"),
    ({"teacher": {"source": "logits", "params": 10}, "task": "policy", "env": {"id": "CartPole-v1"}},
     "teacher.source: only used when task is 'classification'; a policy teacher is an SB3 .zip"),
    ({"task": "multitask", "teacher": {"source": "logits"},
      "heads": [{"name": "a", "env": "CartPole-v1", "checkpoint": "a.zip"},
                {"name": "b", "env": "Acrobot-v1", "checkpoint": "b.zip"}]},
     "teacher.source: only used when task is 'classification'; a multitask teacher is an SB3 .zip (each head's"),
    ({"data": {"name": "arrays"}}, "data.name: 'arrays' reads arrays given in memory"),
    ({"teacher": {"source": "module"}}, "teacher.source: 'module' uses a torch.nn.Module given in memory"),
])
def test_config_mistakes_are_one_line(make_config, capsys, changes, message):
    assert main(["run", str(make_config(changes)), "--quiet"]) == 2
    assert message in _one_line(capsys)


def test_factory_problems_are_one_line(tiny_config_data, user_code, tmp_path):
    torch.save({}, tmp_path / "w.pt")
    base = {"checkpoint": str(tmp_path / "w.pt")}
    for teacher, message in (
        ({"factory": "no_such_module:make"}, "teacher.factory: cannot import 'no_such_module:make' (ModuleNotFoundError"),
        ({"factory": f"{USER_MODULE}:not_a_module"}, "returned int, not a torch.nn.Module"),
        ({"factory": f"{USER_MODULE}:make", "kwargs": {"depth": 3}},
         "failed when called with teacher.kwargs {'depth': 3} (TypeError"),
    ):
        with pytest.raises(ConfigError) as refused:
            execute(config_from_mapping({**tiny_config_data, "teacher": {**base, **teacher}}))
        assert message in str(refused.value) and "\n" not in str(refused.value)


def test_given_objects_the_config_does_not_name_are_refused(tiny_config_data, raw_teacher):
    config = config_from_mapping(tiny_config_data)
    with pytest.raises(ConfigError, match="^teacher.source: a teacher module was given in memory, but teacher.source "
                                          "is 'auto'; set teacher.source: module"):
        execute(config, given=InMemory(teacher=raw_teacher))
    with pytest.raises(ConfigError, match="^data.name: arrays were given in memory, but data.name is 'digits'"):
        execute(config, given=InMemory(data=ArrayData(np.zeros((4, 2)), np.arange(4))))
    with pytest.raises(ConfigError, match="^given.teacher: expected a torch.nn.Module, got str"):
        execute(config_from_mapping({**tiny_config_data, "teacher": {"source": "module"}}),
                given=InMemory(teacher="model.pt"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^data: the ArrayData given has array X_val but not y_val"):
        execute(config_from_mapping({**tiny_config_data, "data": {"name": "arrays"}}),
                given=InMemory(data=ArrayData(np.zeros((40, 2)), np.arange(40) % 2, X_val=np.zeros((4, 2)))))


# ------------------------------------------------------------------ other commands over a user's teacher
def test_entropy_reads_stored_logits_of_the_validation_rows(make_config, raw_teacher, tmp_path, capsys):
    from sklearn.datasets import load_digits

    from tempdistill.information import entropy_summary

    logits = _raw_logits(raw_teacher, load_digits().data)
    path = _digits_npz(tmp_path / "digits.npz", teacher_logits=logits)
    config = make_config({"data": {"name": "npz", "path": str(path)}, "teacher": {"source": "logits"}})
    assert main(["entropy", str(config), "--temperatures", "1", "4", "--plot", str(tmp_path / "e.png")]) == 0
    out = capsys.readouterr().out
    split = load_split(DataConfig(name="npz", path=str(path)), 0)
    expected = entropy_summary(torch.as_tensor(logits[split.rows["val"].index]), 4.0)["mean"]
    row = next(line.split() for line in out.splitlines() if line.split()[:1] in (["4"], ["4.0"], ["4.0000"]))
    assert float(row[1]) == pytest.approx(expected, abs=1e-3)


def test_a_sweep_prepares_no_teacher_of_the_users_own(tiny_config_data, raw_teacher, tmp_path):
    from tempdistill.runner import plan_run
    from tempdistill.tasks.classification import ClassificationTask

    path = _script(raw_teacher, tmp_path / "teacher.ts")
    config = config_from_mapping({**tiny_config_data, "teacher": {"checkpoint": str(path)}})
    plan = plan_run(config)
    assert plan.teacher_backend is None  # nothing to size, train or cache
    assert ClassificationTask.prepare_teacher(config, plan.teacher_backend, plan.teacher_options, print) is None


def test_a_teacher_file_under_home_is_recorded_with_a_tilde(tmp_path):
    """Run files get shared and committed beside tables: the teacher cache is named without its
    maker's home directory; a path elsewhere is recorded as it is."""
    from tempdistill.tasks.teacher import TeacherOrigin, home_relative

    cached = Path.home() / ".cache" / "tempdistill" / "teachers" / "abc.pt"
    assert home_relative(str(cached)) == "~/.cache/tempdistill/teachers/abc.pt"
    assert home_relative(str(tmp_path / "t.pt")) == str(tmp_path / "t.pt")
    assert TeacherOrigin("cache", str(cached), "00").record()["teacher_file"] == "~/.cache/tempdistill/teachers/abc.pt"
