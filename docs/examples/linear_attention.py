"""A linear-attention model defined outside attnlab: a plugin (docs/extending.md).

Every head i scores the tokens linearly against the query token x_T (no softmax) and reads them out:

    s_i(X) = (1/T) sum_t ((w_i * x_T) . x_t) (u_i . x_t),    f(X) = (1/sqrt(m)) sum_i c_i tanh(s_i(X))

for X (B, T, d), with c (m,), u (m, d) and w (m, d) the parameter blocks.
"""

from __future__ import annotations

from typing import Literal

import torch

from attnlab.config import ModelSection, PositiveInt
from attnlab.models import Model
from attnlab.models.base import SampleFlops
from attnlab.seeding import generator


class LinearAttentionConfig(ModelSection):
    """Linear attention: m heads scoring tokens against x_T without a softmax."""

    name: Literal["linear-attn"] = "linear-attn"
    m: PositiveInt = 16
    """Width: the number of heads."""


class LinearAttention(Model):
    config_class = LinearAttentionConfig
    blocks = ("c", "u", "w")
    radius_keys = {"c": "c", "u": "u", "w": "w"}   # block -> train.radius field
    sequence_block = "w"                            # the block that scores the positions

    def __init__(self, d: int, m: int):
        self.d, self.m, self.width = d, m, m

    @classmethod
    def from_config(cls, config: LinearAttentionConfig, d: int, T: int | None = None,
                    outputs: int = 1) -> "LinearAttention":
        return cls(d=d, m=config.m)

    def init(self, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict[str, torch.Tensor]:
        """c ~ N(0, 1) (m,), u ~ N(0, I) (m, d), w ~ N(0, I) (m, d), from the run's init stream."""
        gen = generator(seed, "init")
        params = {"c": torch.randn(self.m, generator=gen, dtype=torch.float64),
                  "u": torch.randn(self.m, self.d, generator=gen, dtype=torch.float64),
                  "w": torch.randn(self.m, self.d, generator=gen, dtype=torch.float64)}
        return {k: v.to(dtype=dtype, device=device) for k, v in params.items()}

    def forward(self, params: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """X (B, T, d) -> f (B,)."""
        query = X[:, -1, None, :] * params["w"]                 # (B, m, d)
        scores = torch.einsum("bmd,btd->bmt", query, X)         # (B, m, T)
        values = torch.einsum("md,btd->bmt", params["u"], X)    # (B, m, T)
        s = (scores * values).mean(-1)                          # (B, m)
        return torch.tanh(s) @ params["c"] / self.m**0.5

    def sample_flops(self, T: int) -> SampleFlops:
        """Per head: w * x_T (d), T scores and T read-outs (2 T d), their products (2 T) forward;
        about twice that backward."""
        forward = 2 * self.m * (self.d + 2 * T * self.d + 2 * T)
        return SampleFlops(forward, 3 * forward)
