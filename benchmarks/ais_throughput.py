"""Throughput of ``pvae.ais`` as a share of the same-run forward+backward matmul ceiling, and
its memory, for K = T × C on a 784-pixel model.

What is measured
----------------
The model of ``log_marginal_throughput.py``: a ``normal-shared`` VAE (decoder MLP
64-512-512-784) with a ``diag-normal`` guide (encoder 784-512-512-128), float32, untrained
(``torch.manual_seed(0)``), on ``torch.rand(n, 784)``. One call ``pvae.ais(model, guide, x,
num_steps=T, num_chains=C)`` is timed from start to end, after one untimed call on one point
with T = 2 (first-call costs).

- Achieved FLOP/s = decoder FLOPs / wall time of the whole call, where the decoder FLOPs are
  those of every decoder pass the call made (counted by a hook on the decoder's first layer:
  rows × 2 Σ in·out over its ``nn.Linear`` layers) times 2: each pass of HMC is a forward and
  a backward pass to the latent values, and the backward pass to the inputs costs the same
  multiply-adds as the forward one (no weight gradients are taken). Everything else (the
  encoder, Pyro's traces at every evaluation, the leapfrog arithmetic, the schedule) counts
  against it.
- Ceiling = the FLOP/s of the same work done bare: the decoder's ``linear`` chain on
  ``(rows, 64)`` inputs that require grad, forward and ``torch.autograd.grad`` back to them,
  ``rows`` = the rows of one pass of the call (n·C), median of ``--ceiling-reps`` runs after
  two untimed ones, in the same process right before the call.
- Memory: the resident set size's high-water mark during the call over the RSS just before it
  (Linux ``/proc``; ``ru_maxrss`` elsewhere), as in ``log_marginal_throughput.py``.

How to read it: ``ratio`` = achieved / ceiling, side by side in one run. A small ratio means the
per-evaluation overhead (Pyro tracing, Python) dominates the matrix products; it shrinks as
n·C grows.

Usage::

    python benchmarks/ais_throughput.py                       # n = 20, T = 50, C = 8
    python benchmarks/ais_throughput.py --num-points 100 --num-chains 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _machine import describe, machine
from log_marginal_throughput import (
    decoder_linears,
    flops_per_row,
    memory_method,
    peak_memory,
    start_memory,
)
from torch import nn

import pvae

SEED = 0


def ceiling(layers, rows: int, reps: int) -> float:
    """FLOP/s of the decoder's matmul chain, forward and backward to its input, on ``rows``."""
    weights = [(layer.weight.detach().clone(), layer.bias.detach().clone()) for layer in layers]
    generator = torch.Generator().manual_seed(SEED)
    z = torch.randn(rows, weights[0][0].shape[1], generator=generator).requires_grad_(True)
    seconds = []
    for _ in range(reps + 2):
        start = time.perf_counter()
        h = z
        for weight, bias in weights:
            h = nn.functional.linear(h, weight, bias)
        torch.autograd.grad(h.sum(), z)
        seconds.append(time.perf_counter() - start)
    return 2 * rows * flops_per_row(layers) / statistics.median(seconds[2:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-points", type=int, default=20)
    parser.add_argument("--num-steps", type=int, default=50)
    parser.add_argument("--num-chains", type=int, default=8)
    parser.add_argument("--num-leapfrog", type=int, default=10)
    parser.add_argument("--ceiling-reps", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    info = machine(device)
    print(describe(info))
    torch.manual_seed(SEED)
    model = pvae.build_model("normal-shared", 784, 64, (512, 512))
    guide = pvae.build_guide("diag-normal", model, (512, 512))
    x = torch.rand(args.num_points, 784, generator=torch.Generator().manual_seed(SEED))
    layers = decoder_linears(model)
    rows: list[int] = []
    layers[0].register_forward_pre_hook(
        lambda module, inputs: rows.append(inputs[0].numel() // module.in_features)
    )
    options = {"num_chains": args.num_chains, "num_leapfrog": args.num_leapfrog, "seed": SEED}
    pvae.ais(model, guide, x[:1], num_steps=2, progress=False, **options)  # first-call costs
    rows.clear()
    top = ceiling(layers, args.num_points * args.num_chains, args.ceiling_reps)
    method = memory_method(device)
    baseline = start_memory(method, device)
    start = time.perf_counter()
    result = pvae.ais(model, guide, x, num_steps=args.num_steps, progress=False, **options)
    seconds = time.perf_counter() - start
    peak = peak_memory(method, device)
    achieved = 2 * sum(rows) * flops_per_row(layers) / seconds
    record = {
        "machine": info,
        "num_points": args.num_points,
        "num_steps": args.num_steps,
        "num_chains": args.num_chains,
        "num_leapfrog": args.num_leapfrog,
        "samples_per_point": args.num_steps * args.num_chains,
        "decoder_passes": len(rows),
        "rows_per_pass": max(rows),
        "seconds": seconds,
        "ms_per_pass": 1e3 * seconds / len(rows),
        "achieved_gflops": achieved / 1e9,
        "ceiling_gflops": top / 1e9,
        "ratio": achieved / top,
        "peak_mib": (peak - baseline) / 2**20,
        "memory_method": method,
        "acceptance": result.acceptance.mean().item(),
    }
    print(
        f"ais: n = {args.num_points}, T = {args.num_steps}, C = {args.num_chains} (K = T·C = "
        f"{record['samples_per_point']}), L = {args.num_leapfrog}: {seconds:.1f} s, "
        f"{len(rows)} decoder passes of {max(rows)} rows ({record['ms_per_pass']:.2f} ms each); "
        f"{record['achieved_gflops']:.2f} GFLOP/s against a ceiling of "
        f"{record['ceiling_gflops']:.2f} (ratio {record['ratio']:.3f}); peak "
        f"{record['peak_mib']:.0f} MiB over the baseline ({method}); acceptance "
        f"{record['acceptance']:.2f}"
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(record, file, indent=2)


if __name__ == "__main__":
    main()
