"""What the benchmarks share: the machine they report, how they wait for a device, and how
they run a worker in a fresh process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pyro
import torch

import pvae


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def processor() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, object]:
    """The platform, processor, library versions, torch's threads and the device."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "pvae": pvae.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe(info: dict[str, object]) -> str:
    """One line of :func:`machine`'s record."""
    return (
        f"machine: {info['processor']}, {info['cpu_count']} CPUs, torch {info['torch']} "
        f"({info['torch_threads']} threads), pyro {info['pyro']}, pvae {info['pvae']}, "
        f"python {info['python']}" + (f", {info['gpu']}" if "gpu" in info else "")
    )


def in_fresh_process(code: str, *args: object, label: str) -> dict:
    """Run ``code`` in a fresh Python process (``python -c code *args``) and return the JSON
    object its last line of output holds; if it fails, stop with its error output, naming
    ``label``."""
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the {label} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
