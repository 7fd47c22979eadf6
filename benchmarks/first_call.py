"""What the first ``pvae.log_marginal`` of a process costs over the same call made again.

What is measured
----------------
In each of ``--processes`` fresh Python processes (one at a time): ``import pvae``, then a
784-pixel Bernoulli VAE (pythae's default MLP sizes: encoder and decoder one hidden layer of
512, latent 16; float32, untrained, ``torch.manual_seed(0)``) with a ``diag-normal`` guide, on
``--num-points`` binary points, and ``pvae.log_marginal(model, guide, x, num_samples=K,
seed=0)`` timed three times in a row with ``time.perf_counter``: the first call, then two warm
ones with the same arguments (the same draws). What a notebook user sees on the first call is
``first``; ``overhead`` = first − the faster warm call, what the first call initializes (lazy
imports, Pyro's checks on the probe passes, the allocator's first pages). The table shows every
process and the medians. The goal (issue 18) is an overhead of at most 0.5 s.

Usage::

    python benchmarks/first_call.py                     # 5 processes, n = 200, K = 1,000
    python benchmarks/first_call.py --processes 9 --num-samples 5000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

WORKER = """
import json, sys, time
start = time.perf_counter()
import torch
import pvae
imported = time.perf_counter() - start
torch.manual_seed(0)
model = pvae.build_model("bernoulli", 784, 16, (512,))
guide = pvae.build_guide("diag-normal", model, (512,))
generator = torch.Generator().manual_seed(0)
x = (torch.rand(int(sys.argv[1]), 784, generator=generator) > 0.5).float()
times = []
for _ in range(3):
    start = time.perf_counter()
    pvae.log_marginal(model, guide, x, num_samples=int(sys.argv[2]), seed=0, progress=False)
    times.append(time.perf_counter() - start)
print(json.dumps({"import": imported, "calls": times}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5, help="fresh processes (5)")
    parser.add_argument("--num-points", type=int, default=200, help="n (200)")
    parser.add_argument("--num-samples", type=int, default=1000, help="K (1,000)")
    args = parser.parse_args()
    import torch
    from _machine import describe, in_fresh_process, machine

    print(describe(machine(torch.device("cpu"))))
    rows = []
    for process in range(args.processes):
        result = in_fresh_process(
            WORKER, args.num_points, args.num_samples, label=f"process {process + 1}"
        )
        first, *warm = result["calls"]
        rows.append(
            {
                "process": process + 1,
                "import s": result["import"],
                "first s": first,
                "warm s": min(warm),
                "overhead s": first - min(warm),
            }
        )
        time.sleep(0.5)
    print(f"\nn = {args.num_points}, K = {args.num_samples}; seconds per call")
    header = list(rows[0])
    print("  ".join(f"{key:>10}" for key in header))
    for row in rows:
        print("  ".join(f"{row[key]:>10.2f}" if key != "process" else f"{row[key]:>10}"
                        for key in header))  # fmt: skip
    medians = {key: statistics.median(row[key] for row in rows) for key in header[1:]}
    print("    median  " + "  ".join(f"{medians[key]:>10.2f}" for key in header[1:]))
    met = medians["overhead s"] <= 0.5
    print(
        f"\nfirst-call overhead {medians['overhead s']:.2f} s (median of {len(rows)} "
        f"processes): goal ≤ 0.5 s {'met' if met else 'not met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
