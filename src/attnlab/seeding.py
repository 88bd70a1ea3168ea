"""Independent random streams derived from one run seed.

Each random quantity of a run (data, initialisation, mini-batch order, ...) draws from its own
stream, so changing how one is drawn never changes another. Streams are CPU generators: the same
seed gives the same numbers whatever device the run computes on.
"""

from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named stream of run seed `seed`."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU torch generator for the named stream of run seed `seed`."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))
