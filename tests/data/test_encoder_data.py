"""Encoder data: random sequences, token normalisation, image patches, the IDX loader."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from attnlab.data.idx import IdxError, read_idx, write_idx
from attnlab.data.images import digits_data, load_mnist, mnist_data, patches
from attnlab.data.random_sequences import random_sequence_data
from attnlab.data.tokens import normalise_tokens


@pytest.mark.parametrize("mode,norm", [("token", 1.0), ("token", "sqrt-d"), ("sequence", 2.0), ("none", 1.0)])
def test_random_sequences_norms(mode, norm):
    data = random_sequence_data(50, 10, 100, seed=0, token_norm=mode, norm=norm)
    X = data.X_train
    assert X.shape == (50, 10, 100) and data.y_train.shape == (50,)
    if mode == "token":
        expected = 10.0 if norm == "sqrt-d" else 1.0
        assert torch.allclose(X.norm(dim=-1), torch.full((50, 10), expected, dtype=X.dtype))
    elif mode == "sequence":
        assert torch.allclose(X.norm(dim=(-2, -1)), torch.full((50,), 2.0, dtype=X.dtype))
    else:
        assert abs(float(X.pow(2).sum(-1).mean()) - 1) < 0.05
    again = random_sequence_data(50, 10, 100, seed=0, token_norm=mode, norm=norm)
    assert torch.equal(X, again.X_train) and torch.equal(data.y_train, again.y_train)


def test_normalise_keeps_zero_tokens_and_rejects_bad_mode():
    X = torch.zeros(1, 2, 3, dtype=torch.float64)
    X[0, 1] = torch.tensor([3.0, 4.0, 0.0])
    out = normalise_tokens(X, "token")
    assert torch.equal(out[0, 0], X[0, 0]) and torch.allclose(out[0, 1], X[0, 1] / 5)
    with pytest.raises(ValueError, match="token_norm = 'unit'"):
        normalise_tokens(X, "unit")


def test_patches_row_major():
    img = torch.arange(64.0).reshape(1, 8, 8)
    p = patches(img, 4)
    assert p.shape == (1, 4, 16)
    assert p[0, 1].tolist() == [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31]
    assert patches(img, "rows").shape == (1, 8, 8)
    with pytest.raises(ValueError, match="patch = 3"):
        patches(img, 3)


def test_digits_subset_one_hot():
    data = digits_data(40, seed=1, patch=4, n_val=10)
    assert data.X_train.shape == (40, 4, 16) and data.y_train.shape == (40, 10)
    assert torch.equal(data.y_train.sum(1), torch.ones(40, dtype=torch.float64))
    assert data.X_val.shape == (10, 4, 16)
    norms = data.X_train.norm(dim=-1)
    assert torch.all(((norms - 1).abs() < 1e-12) | (norms == 0))


def _write_mnist(directory, n=12, compress=False, split="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if compress else ""
    write_idx(directory / f"{split}-images-idx3-ubyte{ext}", images, compress)
    write_idx(directory / f"{split}-labels-idx1-ubyte{ext}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_and_mnist(tmp_path, compress):
    images, labels = _write_mnist(tmp_path, compress=compress)
    got_images, got_labels = load_mnist(tmp_path)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    _write_mnist(tmp_path, n=5, compress=compress, split="t10k")
    data = mnist_data(tmp_path, n=8, seed=0, patch=7, n_val=3)
    assert data.X_train.shape == (8, 16, 49) and data.y_train.shape == (8, 10) and data.X_val.shape == (3, 16, 49)
    floats = np.linspace(-1, 1, 6).reshape(2, 3)
    write_idx(tmp_path / "f.idx", floats)
    assert np.array_equal(read_idx(tmp_path / "f.idx"), floats)


def test_idx_rejects_wrong_magic_truncation_and_dimensions(tmp_path):
    _write_mnist(tmp_path)
    good = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(IdxError, match="bad-magic.*magic number 0102.*expected 0000"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(good[:-10])
    with pytest.raises(IdxError, match=r"short.*truncated.*\(12, 28, 28\).*9408 data bytes, found 9398"):
        read_idx(short)
    short_gz = tmp_path / "short.gz"
    short_gz.write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(IdxError, match="short.gz.*gzip"):
        read_idx(short_gz)
    with pytest.raises(IdxError, match="1 dimension.*expected 3"):
        read_idx(tmp_path / "train-labels-idx1-ubyte", ndim=3)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="no MNIST train labels file"):
        load_mnist(tmp_path)
