"""Images as token sequences, for the one-layer vision Transformer of spec shallow-encoder.md (W5).

An image (H, W) becomes a sequence of patches: `patch = k` cuts k x k squares in row-major order
(T = HW/k^2 tokens of dimension d = k^2), `patch = "rows"` makes every pixel row a token (T = H,
d = W). The patch pixels are the tokens themselves (the identity embedding: a trained linear
embedding would only compose with W_Q, W_K and W_V), scaled to [0, 1] and then normalised
(tokens.py). Targets are one-hot (n, 10). Sources: scikit-learn's 8x8 digits (1797 images) and the
MNIST IDX files in a user's directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attnlab.data.dataset import Dataset
from attnlab.data.idx import IdxError, read_idx
from attnlab.data.tokens import normalise_tokens, resolve_norm
from attnlab.seeding import generator

CLASSES = 10


def patches(images: torch.Tensor, patch: int | str) -> torch.Tensor:
    """Images (n, H, W) -> sequences (n, T, d): k x k patches in row-major order, or rows."""
    n, H, W = images.shape
    if patch == "rows":
        return images.clone()
    if not isinstance(patch, int) or patch <= 0 or H % patch or W % patch:
        raise ValueError(f"patch = {patch!r}: must be 'rows' or a positive integer dividing the image "
                         f"size {H}x{W}")
    k = patch
    blocks = images.reshape(n, H // k, k, W // k, k).permute(0, 1, 3, 2, 4)
    return blocks.reshape(n, (H // k) * (W // k), k * k)


def one_hot(labels: torch.Tensor, classes: int = CLASSES) -> torch.Tensor:
    """Integer labels (n,) -> float64 one-hot targets (n, classes)."""
    return torch.nn.functional.one_hot(labels.long(), classes).to(torch.float64)


def image_sequences(images: np.ndarray, labels: np.ndarray, patch: int | str, token_norm: str,
                    norm: float | str, max_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(X (n, T, d), Y (n, 10)) from raw images (n, H, W) with pixel values in [0, max_value]."""
    X = patches(torch.as_tensor(np.asarray(images), dtype=torch.float64) / max_value, patch)
    X = normalise_tokens(X, token_norm, resolve_norm(norm, X.shape[2], X.shape[1], token_norm))
    return X, one_hot(torch.as_tensor(np.asarray(labels)))


def _subset(count: int, n: int, seed: int, stream: str, field: str) -> torch.Tensor:
    if n > count:
        raise ValueError(f"{field} = {n}: only {count} images are available")
    return torch.randperm(count, generator=generator(seed, stream))[:n]


def digits_data(n: int, seed: int, patch: int | str = 4, token_norm: str = "token", norm: float | str = 1.0,
                n_val: int = 0) -> Dataset:
    """A seeded subset of scikit-learn's handwritten digits: n training and n_val validation images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = _subset(len(digits.target), n + n_val, seed, "subset", "data.n + data.n_val")
    X, Y = image_sequences(digits.images[order.numpy()], digits.target[order.numpy()], patch,
                           token_norm, norm, max_value=16.0)
    return Dataset(X[:n], Y[:n], X[n:], Y[n:])


MNIST_SPLITS = {"train": "train", "val": "t10k"}


def find_mnist_file(directory: Path, split: str, kind: str) -> Path:
    """The images or labels file of an MNIST split ('train' or 't10k'), compressed or not."""
    suffix = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    names = [f"{split}-{kind}-{suffix}", f"{split}-{kind}.{suffix}"]
    candidates = [directory / (name + ext) for name in names for ext in ("", ".gz")]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"data.path = {str(directory)!r}: no MNIST {split} {kind} file; looked for "
                            f"{', '.join(p.name for p in candidates)}")


def load_mnist(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) of an MNIST split ('train' or 't10k') in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"data.path = {str(directory)!r}: not a directory holding the MNIST IDX files")
    images_path = find_mnist_file(directory, split, "images")
    labels_path = find_mnist_file(directory, split, "labels")
    images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise IdxError(f"{str(images_path)!r} holds {images.shape[0]} images but {str(labels_path)!r} "
                       f"holds {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= CLASSES):
        raise IdxError(f"{str(labels_path)!r}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return images, labels


def mnist_data(path: str | Path, n: int, seed: int, patch: int | str = 7, token_norm: str = "token",
               norm: float | str = 1.0, n_val: int = 0) -> Dataset:
    """Seeded subsets of MNIST: n training images (train files) and n_val validation images (t10k)."""
    images, labels = load_mnist(path, "train")
    order = _subset(len(labels), n, seed, "subset", "data.n")
    X, Y = image_sequences(images[order.numpy()], labels[order.numpy()], patch, token_norm, norm, 255.0)
    if n_val == 0:
        return Dataset(X, Y, X[:0], Y[:0])
    images, labels = load_mnist(path, "t10k")
    order = _subset(len(labels), n_val, seed, "subset-val", "data.n_val")
    X_val, Y_val = image_sequences(images[order.numpy()], labels[order.numpy()], patch, token_norm, norm, 255.0)
    return Dataset(X, Y, X_val, Y_val)
