"""The engine on the shallow encoder (runs once attnlab.models.shallow_encoder is present): `auto`
takes its structured path, which equals both generic paths per block in float64."""

import pytest
import torch

from attnlab.ntk import empirical

shallow_encoder = pytest.importorskip("attnlab.models.shallow_encoder")


def relative(a, b):
    error = float((a - b).norm())
    return 0.0 if error == 0 else error / float(b.norm())


@pytest.mark.parametrize("phi", ["flatten", "mean"])
@pytest.mark.parametrize("scaling,init", [("sqrt", "lecun"), ("linear", "ntk")])
def test_structured_equals_generic_paths(phi, scaling, init):
    model = shallow_encoder.ShallowEncoder(d=4, T=3, d_m=6, phi=phi, scaling=scaling, init=init)
    params = model.init(1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    X1 = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    X2 = torch.randn(4, 3, 4, generator=gen, dtype=torch.float64)
    for other in (None, X2):
        fast = empirical(model, X1, other, params=params)
        assert fast.method == "structured" and set(fast.blocks) == set(model.blocks)
        for method in ("jacobian", "vjp-jvp"):
            slow = empirical(model, X1, other, params=params, method=method)
            for block in model.blocks:
                assert relative(fast.blocks[block], slow.blocks[block]) < 1e-10, (method, block)
            assert relative(fast.total, slow.total) < 1e-10
