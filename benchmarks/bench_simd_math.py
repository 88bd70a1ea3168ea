"""The compiled kernels' tanh and exponential against the peers a user would call instead.

The sequence kernels spend most of what their FLOP count leaves out in two functions of
models/native/simd_math.h: the IndRNN's tanh (every unit of every token) and the softmax's
exponential. This measures both on one thread, float32, over an array that stays in the L2 cache,
against
  - glibc's vector math library (libmvec, the AVX2 `_ZGVdN8v_tanhf` and `_ZGVdN8v_expf`), when the
    C library has it;
  - torch.tanh and torch.exp on a tensor of the same values.
Printed per function: ns per value (fastest of --passes), the time of one vector of values in
vector-FMA slots (one FMA on a whole register at the full throughput of the same core, measured in
the same run: the cost in the unit the FLOP count uses), the ratio to attnlab's, and the largest error in units in the last
place against double precision over every 31st float of the range (tanh: 1e-30..10, exp:
-87..-1e-30; both functions are odd or one-signed there).

    PYTHONPATH=src python benchmarks/bench_simd_math.py [--values 16384] [--passes 200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_sequence_step import instruction_set

HERE = Path(__file__).parent
NATIVE = HERE.parent / "src" / "attnlab" / "models" / "native"
RANGES = {"tanh": (1e-30, 10.0), "exp": (-87.0, -1e-30)}


def build(directory: Path) -> tuple[Path, bool]:
    """The driver (simd_math_bench.cpp) compiled as the kernels are; True when libmvec is linked."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise SystemExit("no C++ compiler (g++ or c++) found: the kernels and this benchmark need one")
    binary = directory / "simd_math_bench"
    base = [compiler, "-O3", "-march=native", "-std=c++17", f"-I{NATIVE}", str(HERE / "simd_math_bench.cpp"),
            "-o", str(binary)]
    with_libmvec = subprocess.run([*base[:-3], "-DWITH_LIBMVEC", *base[-3:], "-lmvec"], capture_output=True)
    if with_libmvec.returncode == 0:
        return binary, True
    subprocess.run(base, check=True)
    return binary, False


def sweep(function: str) -> np.ndarray:
    """Every 31st float of the function's range, as the driver checks it."""
    lo, hi = RANGES[function]
    a, b = sorted(np.abs(np.array([lo, hi], dtype=np.float32)).view(np.uint32).astype(np.int64))
    x = np.arange(a, b + 1, 31, dtype=np.int64).astype(np.uint32).view(np.float32)
    return -x if lo < 0 else x


def max_ulp(values: np.ndarray, function: str) -> float:
    """Largest error of torch's float32 `function` over `values`, in float spacings at the exact value."""
    x = torch.from_numpy(values)
    y = getattr(torch, function)(x).double()
    exact = getattr(torch, function)(x.double())
    magnitude = exact.abs().float()
    spacing = (torch.nextafter(magnitude, torch.tensor(float("inf"))).double() - magnitude.double())
    return float(((y - exact).abs() / spacing).max())


def torch_seconds(function: str, values: int, passes: int) -> float:
    """Seconds per value of torch.<function> on `values` values (fastest of `passes`)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(values, generator=g) * 8 - 4 if function == "tanh" else -20 * torch.rand(values, generator=g)
    out, fn, best = torch.empty_like(x), getattr(torch, function), float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        fn(x, out=out)
        best = min(best, time.perf_counter() - start)
    return best / values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=16384)
    parser.add_argument("--passes", type=int, default=200)
    args = parser.parse_args()
    if args.values < 64 or args.passes < 1:
        parser.error("--values must be at least 64 and --passes at least 1")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as directory:
        binary, has_libmvec = build(Path(directory))
        lines = subprocess.run([str(binary), str(args.values), str(args.passes)], capture_output=True, text=True,
                               check=True).stdout.split("\n")
    fma, lanes = float(lines[0].split()[1]), int(lines[0].split()[2])
    rows = [(f, name, float(ns), float(ulp)) for f, name, ns, ulp in (ln.split() for ln in lines[1:] if ln)]
    for function in ("tanh", "exp"):
        rows.append((function, "torch", torch_seconds(function, args.values, args.passes),
                     max_ulp(sweep(function), function)))
    print(f"cpu {instruction_set()}, 1 thread, float32, {args.values} values per pass (in cache), fastest of "
          f"{args.passes} passes; one vector FMA ({lanes} lanes) {fma * 1e9:.3f} ns at full throughput"
          + ("" if has_libmvec else "; glibc's libmvec not found: not measured"))
    print("exp: the kernels' exp(x) for x <= 0 (softmax of shifted logits); libmvec and torch evaluate the "
          "general exp on the same values")
    print(f"{'function':<10}{'implementation':<16}{'ns/value':>10}{'FMA slots/vector':>18}{'vs attnlab':>12}"
          f"{'max error (ulp)':>17}")
    for function in ("tanh", "exp"):
        ours = next(s for f, name, s, _ in rows if f == function and name == "attnlab")
        for f, name, seconds, ulp in rows:
            if f == function:
                print(f"{f:<10}{name:<16}{seconds * 1e9:>10.3f}{lanes * seconds / fma:>18.1f}"
                      f"{seconds / ours:>11.2f}x{ulp:>17.2f}")


if __name__ == "__main__":
    main()
