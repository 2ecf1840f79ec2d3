"""A sweep's ledger (``tempdistill.sweep.ledger``): complete runs kept compactly in a folder,
restored as run files that the sweep's resume keeps and a study reads the same."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from tempdistill.config import ConfigError
from tempdistill.record.run import Run
from tempdistill.sweep.launch import run_sweep
from tempdistill.sweep.ledger import FULL_SERIES, RESTORED_ATTR, read_ledger, restore, write_part
from tempdistill.sweep.plan import plan_sweep
from tempdistill.sweep.resume import resume_plan


@pytest.fixture
def swept(tmp_path: Path, tiny_config_data: Dict[str, Any]):
    raw = dict(tiny_config_data)
    raw["sweep"] = {"seeds": [0, 1]}
    jobs = plan_sweep(raw, {}, None)
    out = tmp_path / "first"
    outcome = run_sweep(jobs, str(out), 1, log=lambda _: None)
    assert len(outcome.paths) == 2
    return jobs, out


def test_restored_runs_read_as_the_originals_and_are_not_run_again(swept, tmp_path: Path) -> None:
    jobs, out = swept
    ledger = tmp_path / "ledger"
    part = write_part(ledger, out)
    assert part is not None and part.name.startswith("part-") and part.stat().st_size < 8_000
    assert write_part(ledger, out) is None                        # nothing new: no second part
    assert len(read_ledger(ledger)) == 2

    fresh = tmp_path / "second"
    restored = restore(ledger, fresh)
    assert len(restored) == 2
    plan = resume_plan(jobs, fresh)
    assert plan.todo == [] and len(plan.kept) == 2                # the sweep keeps them: nothing to run
    originals = {(r.name, r.config["seed"]): r for r in map(Run.read, sorted(out.glob("*.h5")))}
    for path in restored:
        copy = Run.read(path)
        original = originals[(copy.name, copy.config["seed"])]
        assert copy.status == "complete" and RESTORED_ATTR in copy.attrs
        assert copy.config == original.config and path.name == original.path.name
        assert copy.eval["student_accuracy"] == original.eval["student_accuracy"]
        assert {k: v for k, v in copy.eval.items() if np.ndim(v) == 0} == \
            {k: v for k, v in original.eval.items() if np.ndim(v) == 0}
        assert copy.attrs["created"] == original.attrs["created"] and copy.env == original.env
        for name, values in original.series.items():
            kept = copy.series[name]
            assert kept.shape == values.shape
            if name in FULL_SERIES:                               # in full, at float32 precision
                np.testing.assert_array_equal(kept, values.astype(np.float32).astype(np.float64))
            else:                                                 # the last epoch's value only
                assert kept[-1] == values[-1] or (np.isnan(kept[-1]) and np.isnan(values[-1]))
                assert np.isnan(kept[:-1]).all()
    assert write_part(ledger, fresh) is None                      # restored runs are not written back


def test_a_ledger_of_another_config_is_refused(swept, tmp_path: Path, tiny_config_data: Dict[str, Any]) -> None:
    jobs, out = swept
    ledger = tmp_path / "ledger"
    write_part(ledger, out)
    fresh = tmp_path / "second"
    restore(ledger, fresh)
    raw = dict(tiny_config_data)
    raw["sweep"] = {"seeds": [0, 1]}
    raw["distill"] = {**raw["distill"], "lr": 0.5}
    with pytest.raises(ConfigError, match="had another config"):
        resume_plan(plan_sweep(raw, {}, None), fresh)


def test_a_damaged_ledger_names_its_part(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "part-1.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="part-1.jsonl.gz is not a gzip file"):
        read_ledger(ledger)
    entry = {"format": 1, "name": "x", "seed": 0, "digest": "d", "file": "../escape.h5", "config": {"name": "x"},
             "eval": {}, "attrs": {}, "env": {}, "data_attrs": {}, "series": {}, "last": {}}
    with gzip.open(ledger / "part-1.jsonl.gz", "wt") as f:
        f.write(json.dumps(entry) + "\n")
    with pytest.raises(ConfigError, match="entry 1: 'file' must be a plain run file name"):
        read_ledger(ledger)
    entry["file"], entry["seed"] = "x.h5", "0"
    with gzip.open(ledger / "part-1.jsonl.gz", "wt") as f:
        f.write(json.dumps(entry) + "\n")
    with pytest.raises(ConfigError, match="'seed' must be int"):
        read_ledger(ledger)
