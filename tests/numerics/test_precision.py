"""The precision policy: float32 is IEEE float32; no run computes in TF32."""

import torch

from attnlab.config import parse_config
from attnlab.run import setup


def test_every_run_turns_tf32_off_whatever_was_set_before():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("medium")
        setup(parse_config({"model": {"m": 4}, "data": {"n": 10, "T": 3, "d": 2, "K": 8}}))
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
