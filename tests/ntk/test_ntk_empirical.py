"""Empirical NTK: structured == Jacobian contraction == NTK-vector products; chunking changes nothing."""

import pytest
import torch

from attnlab.models import KernelTransformer
from attnlab.ntk import empirical

F64 = torch.float64


def random_inputs(n, T, d, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, T, d, generator=gen, dtype=F64) / d**0.5


def relative(a, b):
    """||a - b|| / ||b|| (0 when both vanish, e.g. the W block at T = 1, where every covariance is 0)."""
    error = float((a - b).norm())
    return 0.0 if error == 0 else error / float(b.norm())


def random_params(model, seed):
    """Initial parameters moved off the paired initialisation, so no symmetry hides an error."""
    params = model.init(seed, dtype=F64)
    gen = torch.Generator().manual_seed(seed + 100)
    return {k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=F64) for k, v in params.items()}


@pytest.mark.parametrize("activation", ["tanh", "erf"])
@pytest.mark.parametrize("m,T", [(2, 1), (4, 3), (6, 1), (8, 5)])
def test_structured_equals_jacobian_per_block(activation, m, T):
    model = KernelTransformer(d=3, m=m, activation_name=activation)
    params = random_params(model, seed=m + T)
    X1, X2 = random_inputs(7, T, 3, 1), random_inputs(5, T, 3, 2)
    for other in (None, X2):
        fast = empirical(model, X1, other, params=params, method="structured")
        slow = empirical(model, X1, other, params=params, method="jacobian")
        assert fast.method == "structured" and slow.method == "jacobian"
        assert set(fast.blocks) == set(slow.blocks) == {"W", "U", "c"}
        for block in fast.blocks:
            assert relative(fast.blocks[block], slow.blocks[block]) < 1e-10, block
        assert relative(fast.total, slow.total) < 1e-10
        assert torch.allclose(sum(fast.blocks.values()), fast.total, rtol=1e-12, atol=0)


def test_structured_matches_per_sample_gradients():
    model = KernelTransformer(d=4, m=6, paired=False)
    params = random_params(model, 3)
    X = random_inputs(6, 4, 4, 5)
    J = {k: v.reshape(6, -1) for k, v in model.per_sample_gradients(params, X).items()}
    K = empirical(model, X, params=params, method="structured")
    for block in J:
        assert relative(K.blocks[block], J[block] @ J[block].T) < 1e-12


def test_generic_paths_agree_and_chunking_changes_nothing():
    model = KernelTransformer(d=3, m=4)
    params = random_params(model, 0)
    X1, X2 = random_inputs(5, 3, 3, 7), random_inputs(4, 3, 3, 8)
    for other in (None, X2):
        ref = empirical(model, X1, other, params=params, method="jacobian")
        for method in ("jacobian", "vjp-jvp"):
            for max_memory in (None, 2_000, 20_000):  # whole problem / one sample / a few samples
                K = empirical(model, X1, other, params=params, method=method, max_memory=max_memory)
                for block in ref.blocks:
                    assert relative(K.blocks[block], ref.blocks[block]) < 1e-12, (method, max_memory, block)
            K = empirical(model, X1, other, params=params, method=method, blocks=False, max_memory=5_000)
            assert K.blocks == {} and relative(K.total, ref.total) < 1e-12


def test_auto_picks_structured_and_generic_when_absent():
    model = KernelTransformer(d=3, m=4)
    params = model.init(0, dtype=F64)
    X = random_inputs(5, 3, 3, 0)
    assert empirical(model, X, params=params).method == "structured"
    plain = lambda p, X: model.forward(p, X)  # noqa: E731  (same function, no structured path)
    assert empirical(plain, X, params=params).method in ("jacobian", "vjp-jvp")
    assert empirical(plain, X, params=params, max_memory=1).method in ("jacobian", "vjp-jvp")


def test_dtype_option_casts_float32_inputs():
    model = KernelTransformer(d=3, m=4)
    params = model.init(0, dtype=torch.float32)
    X = random_inputs(5, 3, 3, 0).float()
    K = empirical(model, X, params=params, dtype=F64)
    assert K.total.dtype == F64
    assert relative(K.total, empirical(model, X.double(), params={k: v.double() for k, v in params.items()}).total) < 1e-12


def test_nn_module_matches_autograd_gradients():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1)).double()
    X = torch.randn(6, 5, dtype=F64)
    grads = []
    for x in X:
        net.zero_grad()
        net(x.unsqueeze(0)).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    J = torch.stack(grads)
    for method in ("jacobian", "vjp-jvp", "auto"):
        K = empirical(net, X, method=method)
        assert set(K.blocks) == {"0.weight", "0.bias", "2.weight", "2.bias"}
        assert relative(K.total, J @ J.T) < 1e-12, method


def test_plain_function_cross_kernel_closed_form():
    """f(X) = v . tanh(X w): K(x, x') = tanh(x w) tanh(x' w) + (v^2 sech^2 sech^2') x . x'."""
    gen = torch.Generator().manual_seed(1)
    params = {"w": torch.randn(4, 3, generator=gen, dtype=F64), "v": torch.randn(3, generator=gen, dtype=F64)}
    f = lambda p, X: torch.tanh(X @ p["w"]) @ p["v"]  # noqa: E731
    X1, X2 = torch.randn(5, 4, generator=gen, dtype=F64), torch.randn(3, 4, generator=gen, dtype=F64)
    h1, h2 = torch.tanh(X1 @ params["w"]), torch.tanh(X2 @ params["w"])
    expected_v = h1 @ h2.T
    expected_w = ((1 - h1**2) * params["v"]) @ ((1 - h2**2) * params["v"]).T * (X1 @ X2.T)
    for method in ("jacobian", "vjp-jvp"):
        K = empirical(f, X1, X2, params=params, method=method)
        assert K.total.shape == (5, 3)
        assert relative(K.blocks["v"], expected_v) < 1e-12
        assert relative(K.blocks["w"], expected_w) < 1e-12


def test_bad_input_is_refused_with_a_clear_message():
    model = KernelTransformer(d=3, m=4)
    X = random_inputs(3, 2, 3, 0)
    with pytest.raises(ValueError, match="method = 'fast'"):
        empirical(model, X, params=model.init(0), method="fast")
    with pytest.raises(ValueError, match="params = None"):
        empirical(model, X)
    with pytest.raises(ValueError, match="no ntk_blocks"):
        empirical(lambda p, X: model.forward(p, X), X, params=model.init(0), method="structured")
    with pytest.raises(ValueError, match="max_memory"):
        empirical(model, X, params=model.init(0), max_memory=-1)
