"""The fixture `target`: the device under test of the CUDA comparisons (cuda_targets.py)."""

from __future__ import annotations

import pytest

from cuda_targets import HAS_CUDA, Target


@pytest.fixture(params=[
    pytest.param("cpu-standin"),
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU "
                                                   "(torch.cuda.is_available() is False)")]),
])
def target(request: pytest.FixtureRequest) -> Target:
    return Target(request.param, "cpu" if request.param == "cpu-standin" else "cuda")
