"""What Ray's local workers buy on this machine: a grid of trainings and a sharded log p(x),
each timed in this process and as Ray tasks, side by side in one run.

What is measured
----------------
Each measurement runs in a fresh Python process (one at a time, wall clock from before
``import pvae`` to the result, so Ray's start-up is counted where it is used):

- **grid**: ``run_collapse_depth`` on sklearn's digits at ``--depths`` (default 1,2,4) × the
  three variants, ``--epochs`` epochs each (the paper's width 512, latent 64, batch 64):
  ``serial`` in one process with torch's default threads (what a user gets without
  ``--ray``), then ``ray=True`` on a local Ray with ``--workers`` CPUs (one torch thread per
  task). The two tables are checked to be equal, ``seconds`` aside.
- **shards**: ``log_marginal`` of ``--num-points`` digits with K = ``--num-samples`` for a
  Normal VAE of the same networks at depth 1 (untrained, ``torch.manual_seed(0)``, float32):
  one call in one process, then ``sharded_log_marginal`` with one shard per worker. The
  estimates are checked to agree to 1e-5 (float32).

The ratio is serial / Ray: above 1, Ray is faster. On 2 cores, 2 workers can at best halve a
grid whose tasks are long and even; each Ray task pays a fresh process (imports: about 3 s
here), and a single process already uses both cores for its matrix products.

Usage::

    python benchmarks/ray_scaling.py                       # depths 1,2,4; 10 epochs; 2 workers
    python benchmarks/ray_scaling.py --epochs 20 --num-samples 5000
"""

from __future__ import annotations

import argparse
import sys

WORKER = """
import json, sys, time, tempfile
start = time.perf_counter()
import dataclasses
import torch
import pvae
kind, mode, depths, epochs, workers, points, samples = sys.argv[1:8]
ray = None
if mode == "ray":
    import ray as module
    module.init(address="local", num_cpus=int(workers), include_dashboard=False,
                log_to_driver=False, logging_level="ERROR")
    ray = True
if kind == "grid":
    from pvae.experiments.collapse_depth import DEFAULT, run_collapse_depth
    depths = tuple(int(d) for d in depths.split(","))
    settings = dataclasses.replace(DEFAULT, depths=depths, epochs=int(epochs),
                                   warmup_epochs=max(1, int(epochs) // 4))
    rows = run_collapse_depth(tempfile.mkdtemp(), settings=settings, progress=False, ray=ray)
    result = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
else:
    torch.manual_seed(0)
    model = pvae.build_model("normal-shared", 64, 64, (512,))
    guide = pvae.build_guide("diag-normal", model, (512,))
    x = pvae.load_digits(seed=0).train[: int(points)].float()
    options = dict(num_samples=int(samples), seed=0, progress=False)
    if ray:
        estimate = pvae.sharded_log_marginal(model, guide, x, num_shards=int(workers), **options)
    else:
        estimate = pvae.log_marginal(model, guide, x, **options)
    result = estimate.estimate.tolist()
print(json.dumps({"seconds": time.perf_counter() - start, "result": result}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="1,2,4", help="grid depths (1,2,4)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (10)")
    parser.add_argument("--workers", type=int, default=2, help="local Ray CPUs (2)")
    parser.add_argument(
        "--num-points",
        type=int,
        default=1000,
        help="shards: n, at most the digits' 1,438 training points (1,000)",
    )
    parser.add_argument("--num-samples", type=int, default=5000, help="shards: K (5,000)")
    args = parser.parse_args()
    import torch
    from _machine import describe, in_fresh_process, machine

    import pvae

    available = len(pvae.load_digits(seed=0).train)
    if not 0 < args.num_points <= available:
        parser.error(f"--num-points must be in [1, {available}], got {args.num_points}")

    print(describe(machine(torch.device("cpu"))))
    rows = []
    for kind in ("grid", "shards"):
        found = {}
        for mode in ("serial", "ray"):
            found[mode] = in_fresh_process(
                WORKER,
                kind,
                mode,
                args.depths,
                args.epochs,
                args.workers,
                args.num_points,
                args.num_samples,
                label=f"{kind} {mode}",
            )
        serial, ray = found["serial"], found["ray"]
        if kind == "grid":
            agree = serial["result"] == ray["result"]
        else:
            agree = (
                max(abs(a - b) for a, b in zip(serial["result"], ray["result"], strict=True)) < 1e-5
            )
        if not agree:
            raise SystemExit(f"{kind}: the Ray result differs from the serial one")
        rows.append((kind, serial["seconds"], ray["seconds"]))
    depths = args.depths.split(",")
    print(
        f"grid: {3 * len(depths)} trainings (depths {args.depths} x 3 variants, {args.epochs} "
        f"epochs on the digits); shards: log p(x) of {args.num_points} points, K = "
        f"{args.num_samples}; Ray: a local Ray of {args.workers} CPUs, started in the measured "
        "process; results equal in both modes (checked)"
    )
    print(f"{'work':<8}{'serial (s)':>12}{'Ray (s)':>10}{'serial / Ray':>14}")
    for kind, serial, ray in rows:
        print(f"{kind:<8}{serial:>12.1f}{ray:>10.1f}{serial / ray:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
