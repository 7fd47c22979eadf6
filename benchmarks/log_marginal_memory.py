"""Peak memory and time of ``pvae.log_marginal`` on 1,000 digits with K = 5,000 samples.

Each chunk size runs in a fresh subprocess, so that the process's peak resident set size
(``ru_maxrss``) belongs to that run alone. Reported: the peak RSS of the whole process, the
baseline RSS just before ``log_marginal`` (Python, torch, the model and the data), the
difference (what the estimate itself needed), and the wall time. The model is a VAE on the
64-pixel bundled digits (Normal decoder with a learned shared variance, MLP 64-256-256-8 and
back), untrained: memory and time do not depend on the weights.

    python benchmarks/log_marginal_memory.py                   # chunk sizes 4096, 16384, 65536
    python benchmarks/log_marginal_memory.py --chunk-sizes 16384 --num-points 200
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def measure(num_points: int, num_samples: int, chunk_size: int, progress: bool) -> dict:
    import torch

    import pvae

    torch.manual_seed(0)
    data = pvae.load_digits().train[:num_points]
    model = pvae.build_model("normal-shared", 64, 8, (256, 256))
    guide = pvae.build_guide("diag-normal", model, (256, 256))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = pvae.log_marginal(
        model, guide, data, num_samples=num_samples, chunk_size=chunk_size, progress=progress
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "num_points": len(result),
        "num_samples": num_samples,
        "chunk_size": chunk_size,
        "peak_rss_mib": round(peak, 1),
        "baseline_rss_mib": round(baseline, 1),
        "estimate_mib": round(peak - baseline, 1),
        "seconds": round(seconds, 1),
        "mean_log_marginal": result.estimate.mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-points", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--chunk-sizes", default="4096,16384,65536")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.worker:
        row = measure(
            args.num_points, args.num_samples, int(args.chunk_sizes), not args.no_progress
        )
        print(json.dumps(row))
        return
    rows = []
    for chunk_size in args.chunk_sizes.split(","):
        command = [
            sys.executable,
            __file__,
            "--worker",
            "--chunk-sizes",
            chunk_size,
            "--num-points",
            str(args.num_points),
            "--num-samples",
            str(args.num_samples),
        ]
        if args.no_progress:
            command.append("--no-progress")
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    import torch

    print(
        f"\nlog_marginal memory, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, float32"
    )
    header = f"{'points':>6} {'K':>6} {'chunk':>6} {'peak RSS':>10} {'baseline':>10} "
    header += f"{'estimate':>10} {'seconds':>8}"
    print(header)
    for row in rows:
        print(
            f"{row['num_points']:>6} {row['num_samples']:>6} {row['chunk_size']:>6} "
            f"{row['peak_rss_mib']:>7.0f} MiB {row['baseline_rss_mib']:>6.0f} MiB "
            f"{row['estimate_mib']:>6.0f} MiB {row['seconds']:>8.1f}"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)


if __name__ == "__main__":
    main()
