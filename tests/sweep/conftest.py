"""Fixtures of the sweep tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """Run the body with torch on one thread (tiny runs; the test machine is shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
