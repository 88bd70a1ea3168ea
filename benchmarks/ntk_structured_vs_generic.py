"""Structured NTK vs the generic torch.func paths, measured in the same run.

Models: the multi-head kernel-regime Transformer (--model transformer; issue sizes n=4096, m=256,
d=8, T=16) and the shallow encoder (--model encoder; issue sizes N=100, T=10, d=100, flatten,
--d-m 512 / 2048 / 4096; needs attnlab.models.shallow_encoder).

Each method runs in a fresh subprocess so its peak memory is its own: on CUDA the peak of
torch.cuda.max_memory_allocated, on the CPU the peak resident set during the computation (sampled
every millisecond from /proc/self/statm) minus the resident set just before it. Printed: seconds, peak memory and
the ratios generic / structured; the kernels are compared (relative Frobenius error) when more than
one method is run.

    python benchmarks/ntk_structured_vs_generic.py                       # Transformer, n=4096 m=256 d=8 T=16
    python benchmarks/ntk_structured_vs_generic.py --n 1024 --methods structured jacobian vjp-jvp
    python benchmarks/ntk_structured_vs_generic.py --model encoder --n 100 --T 10 --d 100 --d-m 512
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import threading
import time

import numpy as np
import torch


def _problem(args):
    if args.model == "encoder":
        from attnlab.models.shallow_encoder import ShallowEncoder

        model = ShallowEncoder(d=args.d, T=args.T, d_m=args.d_m, phi=args.phi, scaling=args.scaling,
                               init=args.init)
    else:
        from attnlab.models import KernelTransformer

        model = KernelTransformer(d=args.d, m=args.m, activation_name="tanh")
    params = model.init(0, dtype=torch.float64, device=args.device)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(args.n, args.T, args.d, generator=gen, dtype=torch.float64)
    X = (X / X.norm(dim=-1, keepdim=True)).to(args.device)
    return model, params, X


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class _RSSPeak:
    """Samples the resident set every millisecond in a thread while active (CPU runs)."""

    def __enter__(self) -> "_RSSPeak":
        self.base = self.peak = _rss_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _measure(args, method, queue):
    from attnlab.ntk import empirical

    torch.set_num_threads(args.threads)
    model, params, X = _problem(args)
    empirical(model, X[:2], params=params, method=method, blocks=False)   # warm-up: first-call costs
    cuda = args.device.startswith("cuda")
    bound = args.max_memory_gb * 2**30
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        K = empirical(model, X, params=params, method=method, blocks=False, max_memory=bound)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with _RSSPeak() as rss:
            start = time.perf_counter()
            K = empirical(model, X, params=params, method=method, blocks=False, max_memory=bound)
            seconds = time.perf_counter() - start
        peak = rss.peak - rss.base
    queue.put((method, seconds, peak, K.total.cpu().numpy()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["transformer", "encoder"], default="transformer")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--m", type=int, default=256)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--d-m", type=int, default=512, help="encoder width")
    parser.add_argument("--phi", default="flatten", help="encoder pooling: flatten or mean")
    parser.add_argument("--scaling", default="sqrt", help="encoder logit scaling: sqrt or linear")
    parser.add_argument("--init", default="lecun", help="encoder initialisation: lecun, he or ntk")
    parser.add_argument("--methods", nargs="+", default=["structured", "jacobian"],
                        choices=["structured", "jacobian", "vjp-jvp"])
    parser.add_argument("--max-memory-gb", type=float, default=8.0,
                        help="bound for the generic paths' working memory (chooses their chunks)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    results = {}
    for method in args.methods:
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(args, method, queue))
        proc.start()
        results[method] = queue.get()[1:]
        proc.join()

    sizes = (f"shallow encoder ({args.phi}, {args.init}, tau_0 {args.scaling}) NTK, d_m={args.d_m}"
             if args.model == "encoder" else f"kernel-regime Transformer NTK, m={args.m}")
    print(f"{sizes}, float64, n={args.n} d={args.d} T={args.T}, device={args.device}, "
          f"threads={args.threads}, generic memory bound {args.max_memory_gb} GiB")
    print(f"{'method':<12}{'seconds':>10}{'peak MiB':>11}{'time ratio':>12}{'memory ratio':>14}{'rel. error':>12}")
    ref_seconds, ref_peak, ref_K = results.get("structured", next(iter(results.values())))
    for method, (seconds, peak, K) in results.items():
        error = float(np.linalg.norm(K - ref_K) / np.linalg.norm(ref_K))
        print(f"{method:<12}{seconds:>10.3f}{peak / 2**20:>11.1f}{seconds / ref_seconds:>12.1f}"
              f"{peak / max(ref_peak, 1):>14.1f}{error:>12.2e}")
    print("ratios: method / structured (above 1: structured is faster / smaller)")


if __name__ == "__main__":
    main()
