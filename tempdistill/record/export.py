"""Getting a trained student out of a run file: as a PyTorch checkpoint or as NIR, and back.

The run stores the student's state dict and the options it was built from, so the student
is rebuilt by its backend exactly as trained, then handed to the backend's exporter.

An export carries everything needed to reproduce the run's predictions from raw inputs:
the input normalisation fitted on the run's training split, the class labels the output
indices stand for, the evaluation temperature, and for a spiking student its encoder, number
of steps, readout and θ0 (in the ``.pt`` dict; in a NIR graph's ``metadata['tempdistill']``
as JSON). ``load_predictor(FILE)`` reads either back into a ``Predictor`` whose
``predict(X)`` takes raw features and returns labels; a NIR file is run by Norse's NIR
importer, not by this project's student classes. The facts carry one sample's shape
(``input_shape``: (F,), or (C, H, W) for a run with ``data.layout: image``) and the layout, so
``predict`` takes images either as (n, C, H, W) or flattened, (n, C·H·W).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from backends import get_backend
from tempdistill.config import ConfigError
from tempdistill.tasks.data import IDENTITY, Normalizer
from tempdistill.core.predict import fair_argmax, seeded_argmax, seeded_logits
from tempdistill.record.checks import fail, quoted
from tempdistill.record.converted import (converted_forward, converted_network, graph_forward, is_conversion,
                                          is_converted_description, write_converted_nir)
from tempdistill.core.student import Backend, Student

FORMATS = ("nir", "pt")


class RunWithStudent(Protocol):
    """What this module reads of a run: a ``tempdistill.record.run.Run`` (``Run.read(path)``).

    A protocol rather than an import: ``Run.student``, ``predict`` and ``export`` call this
    module, so it names only the parts of a run it reads."""

    path: Path
    status: str
    config: Dict[str, Any]
    data: Dict[str, Any]
    data_attrs: Dict[str, Any]
    student_arrays: Dict[str, Any]
    student_attrs: Dict[str, Any]


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def load_student(run: RunWithStudent) -> Tuple[Backend, Student]:
    """Rebuild the trained student stored in a run (its backend, and the student in eval mode)."""
    path = run.path
    attrs = run.student_attrs
    if is_conversion(run):  # ``tempdistill convert`` keeps an IF network, not a student to rebuild
        raise ConfigError(f"RUN: {path} is a conversion of {run.config['conversion']['source']}: it holds an "
                          "integrate-and-fire network, not a trained student; export it with --format nir, or "
                          "predict with Run.predict")
    if not run.student_arrays or "backend" not in attrs:
        raise ConfigError(f"RUN: {path} holds no trained student (the run did not complete, or record.save_student was false)")
    for name in ("options", "input_dim", "num_classes"):
        if name not in attrs:
            raise fail(path, f"/student {name}", "missing; the student cannot be rebuilt without it")
    backend, student = _build(path, "/student", attrs["backend"], json.loads(attrs["options"]),
                              int(attrs["input_dim"]), int(attrs["num_classes"]), image_shape(_input_shape(run)))
    # h5py splits names with '/', so nested groups are joined back into state-dict keys.
    arrays = _flatten(run.student_arrays)
    for name, value in arrays.items():
        if np.asarray(value).dtype.kind not in "biuf":
            raise fail(path, f"/student/{name}", f"expected numbers, got dtype {np.asarray(value).dtype}")
    state = {k.replace("/", "."): torch.as_tensor(v) for k, v in arrays.items()}
    _load_state(student, state, path, "/student/")
    return backend, student


def image_shape(shape: Optional[Sequence[int]]) -> Optional[Tuple[int, ...]]:
    """A recorded sample shape as ``build_student`` takes it: (C, H, W) for images, None for
    flat samples ((F,), or nothing recorded)."""
    return tuple(int(d) for d in shape) if shape is not None and len(shape) > 1 else None


def _build(path: str | Path, where: str, backend_name: str, options: Dict[str, Any], input_dim: int,
           num_classes: int, input_shape: Optional[Tuple[int, ...]] = None) -> Tuple[Backend, Student]:
    """The student a file's options describe, untrained (a conv student from the run's recorded
    ``input_shape``); a bad option names the file."""
    try:
        backend = get_backend(backend_name)
        return backend, backend.build_student(backend.validate(options, "student"), input_dim, num_classes,
                                              input_shape)
    except ConfigError as exc:
        raise fail(path, f"{where} options", str(exc)) from None


def _load_state(student: Student, state: Dict[str, torch.Tensor], path: str | Path, where: str) -> None:
    """Load ``state`` into ``student`` once every name and shape is the one its options built;
    otherwise one line naming the first weight that differs (``load_state_dict`` would raise
    a multi-line error, or copy what fits)."""
    if "log_std" in state:  # a Gaussian policy's learned spread (``Student.enable_log_std``)
        student.enable_log_std(int(state["log_std"].numel()))
    expected = {name: tuple(value.shape) for name, value in student.state_dict().items()}
    for name, value in state.items():
        if name not in expected:
            raise fail(path, f"{where}{name}", "not a weight of the student its options build")
        if tuple(value.shape) != expected[name]:
            raise fail(path, f"{where}{name}", f"shape {tuple(value.shape)}; the student its options build has "
                                                f"{expected[name]}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise fail(path, f"{where}{missing[0]}", f"missing ({len(missing)} weights missing)")
    student.load_state_dict(state)
    student.eval()


EXPORT_FORMAT = 2  # 1: no normalisation, labels or readout facts (runs of format_version 1)


def usage_facts(run: RunWithStudent, describe: Dict[str, Any]) -> Dict[str, Any]:
    """What a user needs besides the weights to get the run's predictions from raw inputs;
    ``describe`` is the student's (``Student.describe()``) or a converted network's."""
    labels = run.data.get("class_labels")
    num_classes = int(run.student_attrs["num_classes"])
    return {
        "export_format": EXPORT_FORMAT,
        "backend": run.student_attrs["backend"],
        "input_dim": int(run.student_attrs["input_dim"]),
        "input_shape": _input_shape(run),
        "layout": str(run.data_attrs.get("layout", "flat")),
        "num_classes": num_classes,
        "class_labels": [int(v) for v in labels] if labels is not None else list(range(num_classes)),
        "normalization": run.data_attrs.get("normalization", IDENTITY.to_json()),
        "eval_temperature": float(run.config.get("distill", {}).get("eval_temperature", 1.0)),
        "describe": describe,
        "task_facts": json.loads(run.student_attrs.get("task_facts", "{}") or "{}"),
    }


def _input_shape(run: RunWithStudent) -> list:
    """One sample's shape as ``/data`` records it ((input_dim,) for runs that predate it or have
    no ``/data``), checked against the student's input width."""
    width = int(run.student_attrs["input_dim"])
    shape = np.asarray(run.data_attrs.get("input_shape", [width]))
    if shape.dtype.kind not in "iu" or shape.ndim != 1 or shape.size == 0 or (shape < 1).any() \
            or int(np.prod(shape)) != width:
        raise fail(run.path, "/data input_shape", f"expected positive integers whose product is the student's "
                                                   f"input_dim {width}, got {quoted(shape.tolist())}")
    return [int(d) for d in shape]


def export_run(run: RunWithStudent, fmt: str, out: str | Path) -> Path:
    """Write the run's student to ``out`` in ``fmt`` ('nir' or 'pt'), with ``usage_facts``."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    if is_conversion(run):
        return _export_conversion(run, fmt, out)
    backend, student = load_student(run)
    exporter = getattr(backend, "export_nir", None)
    if fmt == "nir" and exporter is None:
        raise ConfigError(f"--format: 'nir' needs a spiking student; this run's student backend is {backend.name!r} (use --format pt)")
    out = _out_file(out)
    facts = usage_facts(run, student.describe())
    student.set_temperature(facts["eval_temperature"])
    if fmt == "pt":
        torch.save(
            {
                **facts,
                "options": json.loads(run.student_attrs["options"]),
                "state_dict": student.state_dict(),
                "config": run.config,
                "status": run.status,
            },
            out,
        )
        return out
    exporter(student, out, {"tempdistill": json.dumps(facts)})
    return out


def _out_file(out: str | Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a directory; expected a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _export_conversion(run: RunWithStudent, fmt: str, out: str | Path) -> Path:
    """A converted run's IF network as NIR (``tempdistill.record.converted``)."""
    if fmt != "nir":
        raise ConfigError(f"--format: {fmt!r}: a converted run's integrate-and-fire network exports as 'nir' only "
                          "(a .pt export rebuilds a trained student, which a conversion does not have)")
    layers, describe = converted_network(run)
    return write_converted_nir(layers, usage_facts(run, describe), _out_file(out))


@dataclass
class Predictor:
    """A loaded export: raw features in, the user's class labels out."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    normalizer: Normalizer
    class_labels: np.ndarray
    facts: Dict[str, Any]

    def predict(self, x: np.ndarray, head: Optional[str] = None) -> np.ndarray:
        """Labels for raw features ``x`` (n, F), or (n, *input_shape) for images, normalised as
        in the run, seeded as in the run.

        A policy's student gives actions for observations: action indices, or for continuous
        actions the Gaussian's mean squashed into the action box as the run acted. A multi-task
        student needs ``head``, the task the observations come from (they are padded and
        one-hot tagged as in the run)."""
        task = self.facts.get("task_facts") or {}
        x = np.asarray(x, dtype=np.float64)
        spec = self._head(task, head)
        width = spec["input_dim"] if spec else self.facts["input_dim"]
        shape = tuple(self.facts.get("input_shape") or (width,)) if spec is None else (width,)
        if x.ndim == 1 + len(shape) and x.shape[1:] == shape and len(shape) > 1:
            x = x.reshape(x.shape[0], width)  # images as (n, C, H, W): the student reads them flattened
        if x.ndim != 2 or x.shape[1] != width:
            also = f" or (n, {', '.join(map(str, shape))})" if len(shape) > 1 else ""
            raise ValueError(f"x: expected shape (n, {width}){also}, got {x.shape}")
        inputs = torch.as_tensor(self.normalizer.apply(x), dtype=torch.float32)
        if spec is not None:  # a multi-task student: pad, tag, and read the head's columns
            padded = torch.zeros(inputs.shape[0], self.facts["input_dim"])
            padded[:, : inputs.shape[1]] = inputs
            padded[:, task["features"] + [h["name"] for h in task["heads"]].index(spec["name"])] = 1.0
            start, stop = spec["columns"]
            return fair_argmax(seeded_logits(self.forward, padded)[:, start:stop]).numpy()
        actions = task.get("actions", {})
        if actions.get("kind") == "gaussian":
            from tempdistill.tasks.actions import GaussianActions

            gaussian = GaussianActions.from_facts(actions)
            logits = seeded_logits(self.forward, inputs) * self.facts.get("eval_temperature", 1.0)  # at T = 1
            return gaussian.to_env(gaussian.student_mean(logits))
        return self.class_labels[seeded_argmax(self.forward, inputs)]

    @staticmethod
    def _head(task: Dict[str, Any], head: Optional[str]) -> Optional[Dict[str, Any]]:
        if task.get("task") != "multitask":
            if head is not None:
                raise ValueError("head: only a multi-task student has heads")
            return None
        names = [h["name"] for h in task["heads"]]
        if head not in names:
            raise ValueError(f"head: got {head!r}; this multi-task student's heads: {', '.join(names)}")
        return task["heads"][names.index(head)]


def load_predictor(path: str | Path) -> Predictor:
    """Read a ``.pt`` or ``.nir`` written by ``tempdistill export`` back into a ``Predictor``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"export file not found: {path}")
    if path.suffix == ".nir":
        import nir

        from spiking.nir_graph import metadata_text

        try:
            graph = nir.read(str(path))
        except Exception as exc:  # h5py, NIR's node constructors: a damaged file fails anywhere inside
            raise fail(path, "graph", f"not a readable NIR graph ({type(exc).__name__})") from None
        if "tempdistill" not in (graph.metadata or {}):
            raise ConfigError(f"{path}: NIR graph carries no tempdistill metadata (exported by an older version?)")
        try:
            facts = json.loads(metadata_text(graph.metadata["tempdistill"]))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            facts = None
        if not isinstance(facts, dict) or not isinstance(facts.get("describe"), dict):
            raise fail(path, "metadata tempdistill", "expected a JSON object with the student's description")
        _check_facts(facts, path)
        if is_converted_description(facts["describe"]):
            forward = graph_forward(path, graph, facts)
        else:
            _check_spiking_description(facts["describe"], path)
            forward = _runnable_graph(path, facts)
    else:
        saved = _read_pt(path)
        facts = {k: v for k, v in saved.items() if k not in ("state_dict", "config")}
        _, student = _build(path, "", saved["backend"], saved["options"], saved["input_dim"], saved["num_classes"],
                            image_shape(saved.get("input_shape")))
        _load_state(student, saved["state_dict"], path, "state_dict ")
        student.set_temperature(facts.get("eval_temperature", 1.0))
        forward = student
    try:
        normalizer = Normalizer.from_json(facts["normalization"]) if "normalization" in facts else IDENTITY
    except (ValueError, KeyError, TypeError):
        raise fail(path, "normalization", "expected the JSON of the run's input normalisation") from None
    labels = np.asarray(facts.get("class_labels") or range(facts["num_classes"]), dtype=np.int64)
    return Predictor(forward, normalizer, labels, facts)


def run_predictor(run: RunWithStudent) -> Predictor:
    """A ``Predictor`` straight from a run, the same an export of it would load."""
    if is_conversion(run):
        layers, describe = converted_network(run)
        facts = usage_facts(run, describe)
        forward: Callable[[torch.Tensor], torch.Tensor] = converted_forward(layers, facts["input_shape"],
                                                                           describe["steps"])
    else:
        _, student = load_student(run)
        facts = usage_facts(run, student.describe())
        student.set_temperature(facts["eval_temperature"])
        forward = student
    labels = np.asarray(facts["class_labels"] or range(facts["num_classes"]), dtype=np.int64)
    return Predictor(forward, Normalizer.from_json(facts["normalization"]), labels, facts)


PT_FIELDS = {"backend": str, "options": dict, "input_dim": int, "num_classes": int, "state_dict": dict}


def _read_pt(path: Path) -> Dict[str, Any]:
    """A ``.pt`` export, loaded without running code from it (``weights_only``), checked to
    hold what ``export_run`` writes."""
    import pickle

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise fail(path, "file", f"not a tempdistill export ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(saved, dict):
        raise fail(path, "file", f"expected the dict that tempdistill export writes, got {type(saved).__name__}")
    for name, kind in PT_FIELDS.items():
        if name not in saved:
            raise fail(path, name, "missing (not written by tempdistill export?)")
        if not isinstance(saved[name], kind) or isinstance(saved[name], bool):
            raise fail(path, name, f"expected {kind.__name__}, got {type(saved[name]).__name__}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in saved["state_dict"].items()):
        raise fail(path, "state_dict", "expected weight names mapped to tensors")
    _check_facts(saved, path)
    return saved


def _check_spiking_description(describe: Dict[str, Any], path: Path) -> None:
    """What a NIR graph's runner reads beside the graph: steps within the student schema's
    bounds (they size the encoded input), a known encoder and readout, a finite θ0."""
    from spiking.encoders import ENCODERS
    from spiking.options import SpikingOptions
    from spiking.readout import READOUTS

    bounds = SpikingOptions.model_fields["steps"].metadata
    low = next(m.ge for m in bounds if hasattr(m, "ge"))
    high = next(m.le for m in bounds if hasattr(m, "le"))
    steps = describe.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or not low <= steps <= high:
        raise fail(path, "describe steps", f"expected an integer from {low} to {high}, got {quoted(steps)}")
    for name, allowed in (("encoder", ENCODERS), ("readout", READOUTS)):
        if describe.get(name) not in allowed:
            raise fail(path, f"describe {name}", f"got {quoted(describe.get(name))}; allowed: {', '.join(allowed)}")
    theta0 = describe.get("theta0")
    if not isinstance(theta0, (int, float)) or isinstance(theta0, bool) or not np.isfinite(theta0):
        raise fail(path, "describe theta0", f"expected a finite number, got {quoted(theta0)}")


def _runnable_graph(path: Path, facts: Dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Norse's runner for the graph, tried once on one row of ``input_dim`` zeros: a graph whose
    nodes do not fit together, or do not map the recorded input width to ``num_classes``
    outputs, is refused here rather than at the user's first prediction."""
    try:
        forward = get_backend("norse").nir_forward(str(path), facts["describe"])
        out = forward(torch.zeros(1, facts["input_dim"]))
    except Exception as exc:  # Norse's importer and the graph's own shapes fail in many ways
        raise fail(path, "graph", f"cannot be run as the recorded student ({type(exc).__name__}: "
                   f"{quoted(str(exc), 80)})") from None
    if tuple(out.shape) != (1, facts["num_classes"]):
        raise fail(path, "graph", f"gives {tuple(out.shape)[1:]} outputs per row, expected ({facts['num_classes']},)")
    return forward


def _check_facts(facts: Dict[str, Any], path: Path) -> None:
    """The usage facts a predictor reads: sizes positive, labels one per class, T a number."""
    for name in ("input_dim", "num_classes"):
        if not isinstance(facts.get(name), int) or isinstance(facts[name], bool) or facts[name] < 1:
            raise fail(path, name, f"expected a positive integer, got {facts.get(name)!r:.40}")
    labels = facts.get("class_labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(v, int) for v in labels)
                               or len(labels) not in (0, facts["num_classes"])):
        raise fail(path, "class_labels", f"expected {facts['num_classes']} integer labels")
    shape = facts.get("input_shape", [facts["input_dim"]])
    if (not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 1 for d in shape)
            or int(np.prod(shape)) != facts["input_dim"]):
        raise fail(path, "input_shape", f"expected positive integers whose product is input_dim "
                                        f"{facts['input_dim']}, got {quoted(shape)}")
    temperature = facts.get("eval_temperature", 1.0)
    if not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise fail(path, "eval_temperature", "expected a finite number > 0")
    if not isinstance(facts.get("task_facts", {}), dict):
        raise fail(path, "task_facts", "expected a mapping")
