"""Inputs with a shape: Fashion-MNIST from IDX files, digits as 1×8×8, a user's (n, C, H, W) .npz.

Every Fashion-MNIST file here is a small IDX file written by the test itself; the real data
(Debian's dataset-fashion-mnist) is never needed.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Tuple

import numpy as np
import pytest
import torch

from tempdistill.config import ConfigError, DataConfig, load_config
from tempdistill.record.export import load_predictor
from tempdistill.record.run import Run
from tempdistill.tasks.data import FASHION_MNIST_FILES, load_split, raw_split
from tempdistill.tasks.idx import IdxError, read_idx, write_idx


def write_fashion(root: Path, n_train: int = 100, n_test: int = 40, seed: int = 0) -> Tuple[np.ndarray, ...]:
    """Four IDX .gz files in Fashion-MNIST's names: 28×28 uint8 images whose class shows as a
    bright 6×6 block at a class-dependent place (learnable in a few epochs), labels 0…9 cycling."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = []
    for n in (n_train, n_test):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 5)
            x[i, 4 + 12 * r: 10 + 12 * r, 2 + 5 * c: 8 + 5 * c] = 250
        arrays += [x, y]
    for name, array in zip(FASHION_MNIST_FILES, arrays):
        write_idx(root / f"{name}.gz", array)
    return tuple(arrays)


# ---- the IDX reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_reader_reads_known_arrays(tmp_path: Path, dtype: type, suffix: str) -> None:
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_reader_reads_the_published_byte_layout(tmp_path: Path) -> None:
    """Bytes written by hand as the format describes (big-endian dims and int16 values)."""
    raw = bytes([0, 0, 0x0B, 2]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    raw += b"".join(v.to_bytes(2, "big", signed=True) for v in (1, -2, 300, -400))
    (tmp_path / "h").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "h"), np.array([[1, -2], [300, -400]], dtype=np.int16))


def _one_line(exc: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b"\x08\x03" + b[2:], "not an IDX file"),                # wrong magic
    (lambda b: b[:2] + b"\x0a" + b[3:], "unknown IDX dtype byte 0x0a"),  # unknown dtype
    (lambda b: b[:-5], "truncated"),                                   # values cut short
    (lambda b: b[:9], "truncated IDX header"),                         # header cut short
    (lambda b: b + b"\x00", "more bytes than its header declares"),  # trailing bytes
    (lambda b: b[:4] + (10 ** 9).to_bytes(4, "big") + b[8:], "bytes allowed"),  # absurd claim
], ids=["magic", "dtype", "truncated-values", "truncated-header", "extra", "huge"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_damaged_idx_is_one_line_naming_the_file(tmp_path: Path, damage: Callable[[bytes], bytes], expected: str,
                                                 suffix: str) -> None:
    good = write_idx(tmp_path / "good-idx3", np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)).read_bytes()
    bad = tmp_path / f"bad-idx3{suffix}"
    data = damage(good)
    bad.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(IdxError) as exc:
        read_idx(bad, max_bytes=1 << 20)
    _one_line(exc, str(bad), expected)


def test_truncated_gzip_stream_is_one_line(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(IdxError) as exc:
        read_idx(path)
    _one_line(exc, str(path))


# ---- Fashion-MNIST ----------------------------------------------------------------------------


def test_fashion_mnist_reads_its_own_split(tmp_path: Path) -> None:
    x, y, x_test, y_test = write_fashion(tmp_path / "fm")
    config = DataConfig(name="fashion_mnist", root=str(tmp_path / "fm"), normalize="none", val_fraction=0.2)
    raw = raw_split(config, seed=0)
    assert raw.input_shape == (784,)
    assert len(raw.y_train) == 80 and len(raw.y_val) == 20  # validation carved from its 100 training rows
    np.testing.assert_array_equal(raw.x_test, x_test.reshape(40, 784).astype(np.float64))  # its own test part
    np.testing.assert_array_equal(raw.y_test, y_test)
    np.testing.assert_array_equal(raw.x_train, x[raw.rows["train"].index].reshape(-1, 784))
    assert raw.class_labels.tolist() == list(range(10))

    image = load_split(DataConfig(name="fashion_mnist", root=str(tmp_path / "fm"), layout="image"), seed=0)
    assert image.input_shape == (1, 28, 28) and image.x_test.shape == (40, 784)
    assert image.shaped("test").shape == (40, 1, 28, 28)
    # auto normalisation for images: one global min–max fitted on the training rows
    assert image.normalizer.kind == "minmax"
    assert float(image.normalizer.offset) == float(raw.x_train.min())
    assert float(image.normalizer.scale) == float(raw.x_train.max() - raw.x_train.min())
    facts = image.record()
    assert facts["input_shape"].tolist() == [1, 28, 28] and facts["layout"] == "image"


def test_fashion_mnist_missing_root_says_how_to_get_the_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        raw_split(DataConfig(name="fashion_mnist", root=str(tmp_path / "nowhere")), 0)
    _one_line(exc, "data.root", str(tmp_path / "nowhere"), "apt-get install dataset-fashion-mnist", "make fashion-mnist")
    write_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError) as exc:
        raw_split(DataConfig(name="fashion_mnist", root=str(tmp_path / "fm")), 0)
    _one_line(exc, "data.root", "t10k-labels-idx1-ubyte.gz", "apt-get install")


def test_fashion_mnist_damaged_file_is_one_line(tmp_path: Path) -> None:
    write_fashion(tmp_path / "fm")
    labels = tmp_path / "fm" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (100).to_bytes(4, "big") + bytes(60)))
    with pytest.raises(ConfigError) as exc:
        raw_split(DataConfig(name="fashion_mnist", root=str(tmp_path / "fm")), 0)
    _one_line(exc, "data.root", str(labels), "truncated")


def test_fashion_mnist_default_root_is_debians() -> None:
    assert DataConfig(name="fashion_mnist").root is None
    from tempdistill.tasks.data import FASHION_MNIST_ROOT

    assert FASHION_MNIST_ROOT == "/usr/share/datasets/fashion-mnist"  # dpkg-deb -c dataset-fashion-mnist_*.deb


def test_root_only_for_fashion_mnist_and_image_not_for_mnist1d() -> None:
    with pytest.raises(ValueError, match="data.root: only read when data.name is 'fashion_mnist'"):
        DataConfig(name="digits", root="/tmp")
    with pytest.raises(ValueError, match="data.layout: 'image' needs image data"):
        DataConfig(name="mnist1d", layout="image")


# ---- digits and a user's arrays as images -----------------------------------------------------


def test_digits_as_images_are_the_flat_rows_reshaped() -> None:
    flat = load_split(DataConfig(name="digits"), seed=0)
    image = load_split(DataConfig(name="digits", layout="image"), seed=0)
    assert flat.input_shape == (64,) and flat.layout == "flat"
    assert image.input_shape == (1, 8, 8) and image.shaped("val").shape == (len(image.y_val), 1, 8, 8)
    for part in ("train", "val", "test"):  # the same rows, the same (global min–max) scaling
        torch.testing.assert_close(image.inputs(part), flat.inputs(part), rtol=0, atol=0)
    standard = load_split(DataConfig(name="digits", layout="image", normalize="standard"), seed=0)
    pixels = raw_split(DataConfig(name="digits"), seed=0).x_train
    assert np.allclose(standard.normalizer.offset, pixels.mean()) and np.allclose(standard.normalizer.scale, pixels.std())


def test_npz_images_accepted_with_image_layout_refused_flat(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3, 4, 5)), np.arange(60) % 3
    path = tmp_path / "images.npz"
    np.savez(path, X=x, y=y)
    split = load_split(DataConfig(name="npz", path=str(path), layout="image", normalize="none"), seed=0)
    assert split.input_shape == (3, 4, 5) and split.input_dim == 60
    rows = split.rows["test"].index
    np.testing.assert_allclose(split.shaped("test").numpy(), x[rows].astype(np.float32))
    assert load_split(DataConfig(name="npz", path=str(path), layout="image"), seed=0).normalizer.kind == "minmax"
    with pytest.raises(ConfigError) as exc:
        load_split(DataConfig(name="npz", path=str(path)), seed=0)
    _one_line(exc, "data.path", "X", "(60, 3, 4, 5)", "data.layout=image")
    np.savez(path, X=x.reshape(60, -1), y=y)
    with pytest.raises(ConfigError) as exc:
        load_split(DataConfig(name="npz", path=str(path), layout="image"), seed=0)
    _one_line(exc, "data.path", "(n, C, H, W)", "(60, 60)")
    np.savez(path, X=x, y=y, X_test=x[:5, :, :3], y_test=y[:5])
    with pytest.raises(ConfigError) as exc:
        load_split(DataConfig(name="npz", path=str(path), layout="image"), seed=0)
    _one_line(exc, "X_test", "(3, 3, 5)", "(3, 4, 5)")


# ---- a Fashion-MNIST-format run, end to end ---------------------------------------------------


def test_fashion_mnist_run_and_its_export_predict_the_recorded_test_predictions(
        tmp_path: Path, make_config: Callable[..., Path], cli_subprocess: Callable) -> None:
    _, _, x_test, y_test = write_fashion(tmp_path / "fm")
    config = make_config({"name": "fm", "data": {"name": "fashion_mnist", "root": str(tmp_path / "fm"),
                                                 "layout": "image", "val_fraction": 0.2},
                          "distill": {"epochs": 4}})
    assert load_config(config).data.layout == "image"
    result = cli_subprocess(["run", config, "--quiet", "--out", tmp_path / "runs"])
    assert result.returncode == 0, result.stderr
    [path] = sorted((tmp_path / "runs").glob("*.h5"))
    run = Run.read(path)
    assert run.data_attrs["input_shape"].tolist() == [1, 28, 28] and run.data_attrs["layout"] == "image"
    assert int(run.student_attrs["input_dim"]) == 784
    recorded = np.asarray(run.eval["test_predictions"])
    assert np.mean(recorded == y_test) > 0.5  # it learned the blocks

    out = tmp_path / "fm.pt"
    result = cli_subprocess(["export", path, "--format", "pt", "--out", out])
    assert result.returncode == 0, result.stderr
    predictor = load_predictor(out)
    assert predictor.facts["input_shape"] == [1, 28, 28] and predictor.facts["layout"] == "image"
    raw = x_test.astype(np.float64)
    np.testing.assert_array_equal(predictor.predict(raw[:, None]), recorded)  # (n, 1, 28, 28)
    np.testing.assert_array_equal(predictor.predict(raw.reshape(40, 784)), recorded)  # (n, 784)
    with pytest.raises(ValueError, match=r"expected shape \(n, 784\) or \(n, 1, 28, 28\)"):
        predictor.predict(raw)  # (n, 28, 28): no channel axis


def test_npz_images_that_do_not_fit_a_conv_student_are_one_line_exit_2(
        tmp_path: Path, make_config: Callable[..., Path], cli_subprocess: Callable) -> None:
    """Channel-last images (n, H, W, C) read as a W=1 image, and images too small for the
    student's poolings: each refused before training, one line naming the field, exit 2."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    cases = {
        "channel-last": (rng.random((60, 8, 8, 1)).astype(np.float32), [4, 8]),
        "too-small": (rng.random((60, 1, 3, 3)).astype(np.float32), [4, 8]),
    }
    for label, (x, channels) in cases.items():
        np.savez(tmp_path / f"{label}.npz", X=x, y=y)
        config = make_config({"data": {"name": "npz", "path": str(tmp_path / f"{label}.npz"), "layout": "image"},
                              "student": {"backend": "snntorch", "arch": "conv", "channels": channels, "steps": 2}},
                             name=f"{label}.yaml")
        result = cli_subprocess(["run", config, "--quiet", "--out", tmp_path / "runs"])
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "error: student.channels: 2 stages of 2×2 pooling shrink" in lines[0], lines
        if label == "channel-last":
            assert lines[0].endswith("the samples look channel-last (H, W, C) = (8, 8, 1): store X as (n, C, H, W)")
    assert not list((tmp_path / "runs").glob("*.h5")) if (tmp_path / "runs").exists() else True
