"""Token normalisation of input sequences (spec shallow-encoder.md, section 2).

The encoder's step size gamma = 1 is stable only with normalised inputs, so every generator of
encoder data applies one of: "none" (leave X as it is), "token" (every token rescaled to norm
`norm`), "sequence" (every sequence rescaled to Frobenius norm `norm`). All-zero tokens or sequences
(blank image patches) stay zero.
"""

from __future__ import annotations

import torch

TOKEN_NORMS = ("none", "token", "sequence")


def normalise_tokens(X: torch.Tensor, mode: str = "token", norm: float = 1.0) -> torch.Tensor:
    """X (n, T, d) with its tokens ("token") or sequences ("sequence") rescaled to norm `norm`."""
    if mode not in TOKEN_NORMS:
        raise ValueError(f"token_norm = {mode!r}: allowed are {', '.join(TOKEN_NORMS)}")
    if not norm > 0:
        raise ValueError(f"norm = {norm!r}: must be positive")
    if mode == "none":
        return X
    dims = (-1,) if mode == "token" else (-2, -1)
    lengths = torch.linalg.vector_norm(X, dim=dims, keepdim=True)
    return torch.where(lengths > 0, X * (norm / lengths.clamp_min(torch.finfo(X.dtype).tiny)), X)


def resolve_norm(norm: float | str, d: int, T: int, mode: str) -> float:
    """The numeric target norm: a number, or "sqrt-d" for sqrt(d) per token (sqrt(T d) per sequence)."""
    if norm == "sqrt-d":
        return (d * (T if mode == "sequence" else 1)) ** 0.5
    return float(norm)
