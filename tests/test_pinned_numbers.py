"""Refactors must not move a number: tiny runs of every backend, pinned bit for bit.

``tests/data/pinned_runs.json`` holds, per case, every per-epoch metric as exact float hex and
a hash of the trained student's weights, written by the code before a refactor. Floating-point
results depend on the CPU's kernels and the thread count, so the pin carries the machine it
was written on; elsewhere the test skips and says why. Re-pin (after a change that is *meant*
to move numbers, and say so in the commit) with::

    TEMPDISTILL_REPIN=1 .venv/bin/python -m pytest tests/test_pinned_numbers.py
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch

from tempdistill.config import config_from_mapping
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute

PIN = Path(__file__).resolve().parent / "data" / "pinned_runs.json"
PINNED_METRICS = ("loss", "kd_loss", "ce_loss", "kl", "kl_t1", "temperature", "val_accuracy", "student_entropy",
                  "spikes_per_sample", "synops_per_sample", "effective_temperature_mean")
CASES: Dict[str, Dict[str, Any]] = {
    "dense-learnable": {"student": {"backend": "dense", "hidden": [16]},
                        "temperature": {"schedule": "learnable", "init": 4.0}},
    # The spiking cases were pinned while count was the default readout and name it.
    # The reference (per-step loop) engine, pinned before the fused engine existed.
    "snntorch-direct": {"student": {"backend": "snntorch", "hidden": [16], "steps": 8, "engine": "loop", "readout": "count"}},
    "norse-poisson-homeostasis": {"student": {"backend": "norse", "hidden": [16], "steps": 8, "encoder": "poisson",
                                              "homeostasis": {"target_rate": 0.2, "strength": 0.01}, "engine": "loop", "readout": "count"}},
    "snntorch-instance": {"student": {"backend": "snntorch", "hidden": [16], "steps": 8, "engine": "loop", "readout": "count"},
                          "temperature": {"schedule": "instance", "init": 4.0}},
    # The fused engine (the default): same spikes, gradients equal to rounding, so its own pins.
    "snntorch-direct-fused": {"student": {"backend": "snntorch", "hidden": [16], "steps": 8, "engine": "fused", "readout": "count"}},
    "norse-poisson-homeostasis-fused": {"student": {"backend": "norse", "hidden": [16], "steps": 8, "encoder": "poisson",
                                                    "homeostasis": {"target_rate": 0.2, "strength": 0.01},
                                                    "engine": "fused", "readout": "count"}},
    # The default readout (count_membrane) on the default engine.
    "snntorch-count-membrane": {"student": {"backend": "snntorch", "hidden": [16], "steps": 8}},
}


def machine() -> Dict[str, Any]:
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "arch": platform.machine(), "threads": torch.get_num_threads()}


def fingerprint_of(run: Dict[str, Any]) -> Dict[str, Any]:
    metrics = {name: [float(v).hex() for v in run["metrics"][name]] for name in PINNED_METRICS if name in run["metrics"]}
    digest = hashlib.sha256()
    for name, value in sorted(_flat(run["student"]).items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return {"metrics": metrics, "student_sha256": digest.hexdigest()}


def _flat(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}/") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _merge(base: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture(scope="module")
def pinned() -> Dict[str, Any]:
    return json.loads(PIN.read_text()) if PIN.exists() else {}


@pytest.mark.parametrize("case", list(CASES))
def test_tiny_runs_reproduce_the_pinned_numbers_bit_for_bit(case, tiny_config_data, pinned):
    torch.set_num_threads(1)
    changes = dict(CASES[case])
    mapping = _merge(tiny_config_data, {k: v for k, v in changes.items() if k != "temperature"})
    if "temperature" in changes:  # a whole schedule section replaces the tiny config's
        mapping["distill"]["temperature"] = changes["temperature"]
    config = config_from_mapping(mapping)
    got = fingerprint_of(read_run(execute(config, warn=lambda _: None)))
    if os.environ.get("TEMPDISTILL_REPIN"):
        pinned["machine"] = machine()  # the pin holds this machine's numbers
        pinned.setdefault("cases", {})[case] = got
        PIN.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
        return
    if pinned.get("machine") != machine():
        pytest.skip(f"numbers pinned on {pinned.get('machine')}, this is {machine()}")
    expected = pinned["cases"][case]
    for name, values in expected["metrics"].items():
        assert got["metrics"].get(name) == values, f"{case}: {name} moved"
    assert got["student_sha256"] == expected["student_sha256"], f"{case}: trained weights moved"
