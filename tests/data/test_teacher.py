import torch

from attnlab.data.teacher import Teacher, random_sequences, teacher_data
from attnlab.models.kernel_transformer import KernelTransformer


def test_same_seed_same_data_and_other_seed_other_data():
    a, b = teacher_data(60, 4, 3, seed=7, K=128), teacher_data(60, 4, 3, seed=7, K=128)
    for x, y in zip((a.X_train, a.y_train, a.X_val), (b.X_train, b.y_train, b.X_val)):
        assert torch.equal(x, y)
    assert not torch.equal(a.y_train, teacher_data(60, 4, 3, seed=8, K=128).y_train)


def test_split_sizes_and_unit_tokens():
    data = teacher_data(100, 5, 3, seed=0, K=64)
    assert data.X_train.shape == (80, 5, 3) and data.X_val.shape == (20, 5, 3)
    assert data.X_train.norm(dim=-1).max() <= 1 + 1e-12


def test_labels_respect_the_bound_implied_by_the_transport_map():
    X = random_sequences(200, 6, 4, seed=1)
    for nu in [(3.0, 3.0, 3.0), (1.0, 0.0, 5.0)]:
        teacher = Teacher(X[:8], seed=1, nu=nu)
        y = teacher.labels(X, K=512)
        assert y.abs().max() <= teacher.label_bound(512)
        v_c, v_u, v_w = teacher.transport(*teacher.draw(512))
        assert v_c.abs().max() <= nu[0] + 1e-12
        assert v_u.norm(dim=-1).max() <= nu[1] + 1e-12
        assert v_w.flatten(1).norm(dim=-1).max() <= nu[2] + 1e-9


def test_labels_equal_the_explicit_feature_transport_inner_products():
    """The label shortcut equals <psi, v> formed with explicit d x d matrices."""
    X = random_sequences(12, 5, 3, seed=2)
    teacher = Teacher(X[:4], seed=2, nu=(3.0, 2.0, 0.5))
    U, W = teacher.draw(16)
    model = KernelTransformer(d=3, m=16, paired=False)
    params = {"W": W, "U": U, "c": torch.ones(16, dtype=torch.float64)}
    psi = {k: v * 4.0 for k, v in model.per_sample_gradients(params, X).items()}  # undo 1/sqrt(m)
    anchors = {k: v * 4.0 for k, v in model.per_sample_gradients(params, X[:4]).items()}
    Wr = anchors["W"]                                                # (R, K, d, d)
    clip = torch.clamp(0.5 / Wr.flatten(2).norm(dim=-1), max=1.0)
    v_w = torch.einsum("r,rk,rkde->kde", teacher.alpha, clip, Wr)
    v_u = 2.0 * torch.einsum("r,rkd->kd", teacher.alpha, anchors["U"])
    v_c = 3.0 * teacher.alpha @ anchors["c"]
    explicit = psi["c"] * v_c + (psi["U"] * v_u).sum(-1) + (psi["W"] * v_w).flatten(2).sum(-1)
    torch.testing.assert_close(teacher.features_dot_transport(X, U, W), explicit, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(teacher.labels(X, 16, chunk=5, compute_dtype=torch.float64),
                               explicit.mean(1), rtol=1e-10, atol=1e-12)


def test_labels_split_over_samples_equal_labels_in_one_piece():
    """Long sequences are labelled a block of samples at a time, with the same values."""
    X = random_sequences(50, 9, 3, seed=4)
    teacher = Teacher(X[:4], seed=4)
    whole = teacher.labels(X, K=96, chunk=32, compute_dtype=torch.float64)
    split = teacher.labels(X, K=96, chunk=32, compute_dtype=torch.float64, max_elements=7 * 9 * 32)
    assert torch.allclose(split, whole, rtol=1e-13, atol=1e-15)
