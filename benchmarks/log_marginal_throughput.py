"""Throughput of ``pvae.log_marginal`` as a share of the machine's matmul speed, and its memory.

What is measured
----------------
A ``normal-shared`` VAE (decoder MLP 64-512-512-784, learned shared Normal variance) with a
``diag-normal`` guide (encoder MLP 784-512-512-128), float32, untrained (``torch.manual_seed(0)``
before building): time and memory do not depend on the weights. The data are
``torch.rand(n, 784)`` from a generator seeded with 0. For every chunk size, one call
``pvae.log_marginal(model, guide, x, num_samples=K, chunk_size=...)`` is timed from start to end.

- Achieved FLOP/s = decoder FLOPs / wall time of the whole call. The decoder FLOPs are
  :math:`n K \\cdot 2 \\sum_\\ell \\mathrm{in}_\\ell \\mathrm{out}_\\ell` over the decoder's
  ``nn.Linear`` layers (biases and activations not counted): the multiply-adds that any
  importance sampler must do. Everything else the call does (the encoder, sampling,
  log-densities, logsumexp, the PSIS k̂ fits, Pyro's tracing) counts against it; that is the
  point.
- Ceiling = the FLOP/s of the same matmuls done bare: the chain of
  ``torch.nn.functional.linear`` calls with copies of the decoder's weights and biases (no
  activations: only the matrix products), on a ``(rows, 64)`` standard-normal input under
  ``torch.inference_mode()``, where ``rows`` is the most (sample, point) rows the decoder saw in
  one pass of the call (``rows/pass``). It is timed in the same process right before the call
  (``--ceiling-reps`` runs after two untimed ones) and right after it, and the median of all of
  them is taken, so both sides see the same machine state.
- Before the clock starts: one untimed call on the first point with the same K and chunk
  options (first-call costs: Pyro's checks, one full pass), then the
  timed call's own arguments in a call stopped, by a hook on the decoder, as soon as its
  passes outgrow the warm-up's or outnumber them: its largest pass is ``rows`` (the library's
  own small planning passes on one point are the same in both calls). Should the timed call's
  largest pass differ all the same, the ceiling is the median of the runs after it alone.
- Memory: every chunk size runs in a fresh subprocess. On CPU (Linux), the resident set size:
  ``baseline`` is the RSS just before the call (Python, torch, pyro, the model, the data,
  after the warm-up calls and the ceiling runs, with freed heap memory handed back to the
  system by ``malloc_trim`` first, so the call cannot reuse it unseen); the high-water mark is
  then reset (``/proc/self/clear_refs``) and ``peak`` is the highest RSS during the call. On
  CUDA, ``torch.cuda.memory_allocated`` before the call and ``torch.cuda.max_memory_allocated``
  during it (peak statistics reset first). Elsewhere, ``ru_maxrss`` before and after.

How to read it: ``ratio`` = achieved / ceiling FLOP/s, side by side in one run, so it does not
depend on how fast the machine is. The goals: ratio ≥ 0.85 (issue 18; issue 12's was 0.60), and a
peak below 2 GiB for K = 5,000 on 10,000 points of 784 dimensions (the ``--num-points 10000
--chunk-sizes auto`` run).
``rows/pass`` shows how the call split its n·K (sample, point) rows.

``auto`` means ``chunk_size=None``: the library picks the chunk from its memory budget
(``max_memory=``, passed through from ``--max-memory``; a fixed chunk size takes no budget).
With a pvae whose ``log_marginal`` has no ``max_memory`` argument, ``auto`` leaves
``chunk_size`` at its default instead (said in the output).

Usage::

    python benchmarks/log_marginal_throughput.py                  # 200 points, K = 5,000
    python benchmarks/log_marginal_throughput.py --num-points 10000 --chunk-sizes auto
    python benchmarks/log_marginal_throughput.py --chunk-sizes 4096,auto --max-memory 512MiB
    python benchmarks/log_marginal_throughput.py --device cuda --json throughput.json

The default run takes a few minutes on 2 cores; the 10,000-point memory run several minutes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import inspect
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import torch
from _machine import describe, machine, synchronize
from torch import nn

import pvae

DATA_DIM = 784
LATENT_DIM = 64
HIDDEN_SIZES = (512, 512)
SEED = 0
MIB = 2**20
CEILING_WARMUP = 2
AUTO_CHUNK = "max_memory" in inspect.signature(pvae.log_marginal).parameters
SEEDED = "seed" in inspect.signature(pvae.log_marginal).parameters


class _StopProbe(Exception):
    """Raised by :class:`PassRecorder` to stop a probe call."""


class PassRecorder:
    """Forward pre-hook on the decoder's first ``nn.Linear``: how many (sample, point) rows each
    decoder pass carries, whatever the batch shape the library uses.

    With ``stop_after`` set (the passes of a smaller call), the call is stopped at the first
    pass larger than all of those, or after as many passes.
    """

    def __init__(self, layer: nn.Linear):
        self.rows: list[int] = []
        self.stop_after: list[int] | None = None
        layer.register_forward_pre_hook(self)

    def __call__(self, module: nn.Linear, args: tuple[torch.Tensor, ...]) -> None:
        self.rows.append(args[0].numel() // module.in_features)
        if self.stop_after is not None and (
            self.rows[-1] > max(self.stop_after) or len(self.rows) > len(self.stop_after)
        ):
            raise _StopProbe


def decoder_linears(model: nn.Module) -> list[nn.Linear]:
    """The decoder's linear layers in order; they must form a chain 64 → ... → 784."""
    layers = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)]
    for first, second in itertools.pairwise(layers):
        if first.out_features != second.in_features:
            raise RuntimeError("the decoder's linear layers do not form a chain")
    return layers


def flops_per_row(layers: Sequence[nn.Linear]) -> int:
    return sum(2 * layer.in_features * layer.out_features for layer in layers)


def time_ceiling(
    weights: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    rows: int,
    reps: int,
    device: torch.device,
) -> list[float]:
    """Seconds of each of ``reps`` runs of the decoder's matmul chain on ``rows`` rows."""
    generator = torch.Generator(device=device).manual_seed(SEED)
    z = torch.randn(rows, weights[0][0].shape[1], generator=generator, device=device)
    seconds = []
    with torch.inference_mode():
        for _ in range(reps):
            synchronize(device)
            start = time.perf_counter()
            h = z
            for weight, bias in weights:
                h = nn.functional.linear(h, weight, bias)
            synchronize(device)
            seconds.append(time.perf_counter() - start)
    return seconds


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc), so that the RSS baseline holds only
    what is in use and the timed call cannot grow into memory freed by the warm-ups unseen."""
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name is not None else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _max_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "cuda_allocated"
    return "proc_rss" if os.path.exists("/proc/self/clear_refs") else "ru_maxrss"


def start_memory(method: str, device: torch.device) -> int:
    """The baseline in bytes, and the peak counter reset to it where the platform allows."""
    if method == "cuda_allocated":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    if method == "proc_rss":
        release_free_memory()
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")  # reset the high-water mark (VmHWM) to the current RSS
        return _proc_status_bytes("VmRSS")
    return _max_rss_bytes()


def peak_memory(method: str, device: torch.device) -> int:
    if method == "cuda_allocated":
        synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    if method == "proc_rss":
        return _proc_status_bytes("VmHWM")
    return _max_rss_bytes()


def chunk_options(chunk: str, max_memory: str | None) -> dict[str, object]:
    """Keyword arguments of ``log_marginal`` for a chunk size given as digits or ``auto``, and
    ``seed`` where it takes one (repeatable estimates)."""
    options: dict[str, object] = {"seed": SEED} if SEEDED else {}
    if chunk != "auto":
        options["chunk_size"] = int(chunk)
    elif AUTO_CHUNK:
        options["chunk_size"] = None
        if max_memory is not None:
            options["max_memory"] = int(max_memory) if max_memory.isdigit() else max_memory
    return options


def measure(
    *,
    num_points: int,
    num_samples: int,
    chunk: str,
    max_memory: str | None,
    ceiling_reps: int,
    device: torch.device,
    progress: bool,
) -> dict[str, object]:
    """One configuration, in a process of its own: the timed call and the ceiling around it."""
    torch.manual_seed(SEED)
    model = pvae.build_model("normal-shared", DATA_DIM, LATENT_DIM, HIDDEN_SIZES).to(device)
    guide = pvae.build_guide("diag-normal", model, HIDDEN_SIZES).to(device)
    generator = torch.Generator().manual_seed(SEED)
    data = torch.rand(num_points, DATA_DIM, generator=generator).to(device)
    layers = decoder_linears(model)
    weights = [
        (layer.weight.detach().clone(), None if layer.bias is None else layer.bias.detach().clone())
        for layer in layers
    ]
    recorder = PassRecorder(layers[0])
    options = chunk_options(chunk, max_memory)

    # First-call costs on one point; then the timed call's largest pass, found without its work.
    pvae.log_marginal(model, guide, data[:1], num_samples=num_samples, progress=False, **options)
    recorder.stop_after = list(recorder.rows)
    recorder.rows.clear()
    try:
        pvae.log_marginal(model, guide, data, num_samples=num_samples, progress=False, **options)
    except _StopProbe:
        pass
    rows_before = max(recorder.rows + recorder.stop_after)
    recorder.stop_after = None

    time_ceiling(weights, rows_before, CEILING_WARMUP, device)
    before = time_ceiling(weights, rows_before, ceiling_reps, device)

    method = memory_method(device)
    recorder.rows.clear()
    baseline = start_memory(method, device)
    synchronize(device)
    start = time.perf_counter()
    result = pvae.log_marginal(
        model, guide, data, num_samples=num_samples, progress=progress, **options
    )
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = peak_memory(method, device)
    rows = max(recorder.rows)

    if rows != rows_before:
        time_ceiling(weights, rows, CEILING_WARMUP, device)
    after = time_ceiling(weights, rows, ceiling_reps, device)
    ceiling_seconds = statistics.median(before + after if rows == rows_before else after)

    row_flops = flops_per_row(layers)
    achieved = num_points * num_samples * row_flops / seconds
    ceiling = rows * row_flops / ceiling_seconds
    return {
        "chunk": chunk,
        "options": {key: str(value) for key, value in options.items()},
        "num_points": num_points,
        "num_samples": num_samples,
        "rows_per_pass": rows,
        "rows_probed": rows_before,
        "decoder_calls": len(recorder.rows),  # the library's planning passes included
        "seconds": seconds,
        "points_per_second": num_points / seconds,
        "decoder_flops_per_row": row_flops,
        "achieved_gflops": achieved / 1e9,
        "ceiling_gflops": ceiling / 1e9,
        "ceiling_gflops_before": rows_before * row_flops / statistics.median(before) / 1e9,
        "ceiling_gflops_after": rows * row_flops / statistics.median(after) / 1e9,
        "ratio": achieved / ceiling,
        "memory_method": method,
        "peak_mib": peak / MIB,
        "baseline_mib": baseline / MIB,
        "estimate_mib": (peak - baseline) / MIB,
        "mean_log_marginal": result.estimate.mean().item(),
        "torch_threads": torch.get_num_threads(),
    }


def format_table(rows: Sequence[dict], device: torch.device) -> str:
    memory = "alloc" if device.type == "cuda" else "RSS"
    header = (
        f"{'chunk':>7}{'rows/pass':>11}{'seconds':>9}{'points/s':>10}"
        f"{'GFLOP/s':>9}{'ceiling (before/after)':>25}{'ratio':>7}"
        f"{'peak ' + memory:>11}{'baseline':>10}{'peak-base':>11}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        ceiling = (
            f"{r['ceiling_gflops']:.1f} ({r['ceiling_gflops_before']:.1f}/"
            f"{r['ceiling_gflops_after']:.1f})"
        )
        lines.append(
            f"{r['chunk']:>7}{r['rows_per_pass']:>11}{r['seconds']:>9.2f}"
            f"{r['points_per_second']:>10.1f}{r['achieved_gflops']:>9.1f}{ceiling:>25}"
            f"{r['ratio']:>7.2f}{r['peak_mib']:>7.0f} MiB{r['baseline_mib']:>6.0f} MiB"
            f"{r['estimate_mib']:>7.0f} MiB"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-points", type=int, default=200, help="n (default 200)")
    parser.add_argument("--num-samples", type=int, default=5000, help="K (default 5000)")
    parser.add_argument(
        "--chunk-sizes",
        default="1024,4096,16384,auto",
        help="comma-separated chunk sizes in rows, or auto for chunk_size=None "
        "(default 1024,4096,16384,auto)",
    )
    parser.add_argument(
        "--max-memory",
        default=None,
        help="passed to log_marginal as max_memory= for the auto chunk size: bytes, or a "
        'string like "512MiB"',
    )
    parser.add_argument("--ceiling-reps", type=int, default=5, help="timed runs each side (5)")
    parser.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda"')
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write results here")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar in the call")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("num_points", "num_samples", "ceiling_reps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    args.chunk_sizes = [chunk.strip() for chunk in args.chunk_sizes.split(",")]
    for chunk in args.chunk_sizes:
        if chunk != "auto" and not (chunk.isdigit() and int(chunk) >= 1):
            parser.error(f"--chunk-sizes: {chunk!r} is neither a positive integer nor 'auto'")
    if args.max_memory is not None and not AUTO_CHUNK:
        parser.error("--max-memory: this pvae's log_marginal has no max_memory argument")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available to torch")
    return args


def worker_command(args: argparse.Namespace, chunk: str) -> list[str]:
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--chunk-sizes", chunk]
    command += ["--num-points", str(args.num_points), "--num-samples", str(args.num_samples)]
    command += ["--ceiling-reps", str(args.ceiling_reps), "--device", args.device]
    if args.max_memory is not None:
        command += ["--max-memory", args.max_memory]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.no_progress:
        command.append("--no-progress")
    return command


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.worker:
        (chunk,) = args.chunk_sizes
        row = measure(
            num_points=args.num_points,
            num_samples=args.num_samples,
            chunk=chunk,
            max_memory=args.max_memory,
            ceiling_reps=args.ceiling_reps,
            device=device,
            progress=not args.no_progress,
        )
        print(json.dumps(row))
        return

    info = machine(device)
    print(
        f"log_marginal_throughput: pvae.log_marginal vs the decoder's matmuls, VAE "
        f"{DATA_DIM}-{'-'.join(map(str, HIDDEN_SIZES))}-{LATENT_DIM} (both ways), float32, "
        f"n={args.num_points}, K={args.num_samples}, max_memory={args.max_memory}, "
        f"device {device}, one subprocess per chunk size"
    )
    print(describe(info))
    start = time.perf_counter()
    rows = []
    for chunk in args.chunk_sizes:
        output = subprocess.run(
            worker_command(args, chunk), check=True, stdout=subprocess.PIPE, text=True
        ).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(f"  done: chunk={chunk}", flush=True)
    wall = time.perf_counter() - start

    memory = {
        "cuda_allocated": "CUDA memory allocated by torch",
        "proc_rss": "resident set size",
        "ru_maxrss": "ru_maxrss",
    }[rows[0]["memory_method"]]
    print()
    print(format_table(rows, device))
    print()
    print(
        f"GFLOP/s = decoder FLOPs ({rows[0]['decoder_flops_per_row']:,} per row, n·K rows) / "
        "wall time of the whole call; ceiling = the decoder's F.linear chain on rows/pass "
        f"rows, median of {args.ceiling_reps} runs before and after the call; "
        "ratio = GFLOP/s / ceiling."
    )
    print(f"Memory: {memory}; baseline just before the call, peak during it, in MiB (2^20 bytes).")
    if "auto" in args.chunk_sizes and not AUTO_CHUNK:
        print(
            "auto: this pvae's log_marginal has no max_memory argument; chunk_size was left "
            "at its default."
        )
    print(
        "Goals: ratio >= 0.85 (issue 18; 0.60 before); peak < 2 GiB (2048 MiB) for K = 5,000 "
        "on 10,000 points of 784 dims (--num-points 10000 --chunk-sizes auto)."
    )
    print(f"benchmark wall time: {wall:.1f} s")
    if args.json:
        payload = {
            "config": {**vars(args), "hidden_sizes": HIDDEN_SIZES, "latent_dim": LATENT_DIM},
            "machine": info,
            "auto_chunk_supported": AUTO_CHUNK,
            "wall_seconds": wall,
            "results": rows,
        }
        with open(args.json, "w") as file:
            json.dump(payload, file, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
