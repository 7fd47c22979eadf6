"""How much does training through ``pvae.fit`` (Pyro SVI) cost over a hand-written PyTorch loop?

What is measured
----------------
A ``normal-fixed`` VAE (decoder MLP 64-512-512-784, fixed Normal variance 1) with a
``diag-normal`` guide (encoder MLP 784-512-512-128 → loc, softplus(raw) + 1e-4) is trained on
random data in [0, 1) (``torch.rand``, float32) four ways, each starting from the *same* initial
weights:

- ``pvae``: ``pvae.fit`` with its default settings (monitoring on: every epoch ends with an
  ELBO evaluation on ``monitor_size=1024`` training points; the non-finite guard on: one norm
  of all gradients before every update and a snapshot of the last good state every epoch);
- ``pvae mon=0``: ``pvae.fit`` with ``monitor_size=0`` (the SVI steps alone);
- ``hand``: a plain PyTorch loop over deep copies of the very same encoder and decoder networks
  (``copy.deepcopy(guide.encoder.net)``, ``copy.deepcopy(model.decoder.net)``), with one
  ``torch.optim.Adam`` at the same learning rate (torch's default kernel, as such a loop is
  usually written), the same shuffling (``torch.randperm`` from a
  generator seeded like ``pvae.fit``'s), the same reparameterized sample, the same full-data
  scaling ``N / B`` of each minibatch objective, and one ``loss.item()`` per step, as SVI does.
  For ``--elbo meanfield`` its KL is analytic (``kl_divergence``, like ``TraceMeanField_ELBO``);
  for ``--elbo trace`` it is the one-sample estimate ``log q(z|x) - log p(z)`` (like
  ``Trace_ELBO``), so both sides compute the same estimator;
- ``hand fused``: the same loop with ``torch.optim.Adam(..., fused=True)``, the optimizer
  ``pvae.fit`` uses by default: compared with ``pvae mon=0`` it isolates what Pyro's SVI
  (tracing, parameter collection, log-density bookkeeping) and the non-finite guard add, from
  the choice of Adam kernel.

Because both sides draw the same random numbers in the same order, their per-epoch losses agree
up to float rounding; the ``max|Δloss|`` column (relative difference of the epoch losses of the
last repeat) checks that the comparison is like for like.

How it is timed: for every (ELBO, batch size) there is one untimed warm-up run of each variant
(one epoch), then ``--repeats`` rounds; each round times one run of ``--epochs`` epochs of every
variant back to back with ``time.perf_counter``, reversing the order every other round so that
neither side always runs first. A run's time covers the whole ``pvae.fit`` call (its argument
checks and set-up included), or the whole hand-written loop (its optimizer construction
included), divided by the number of epochs; building the model and guide and copying the
networks happen before the clock starts. The table shows medians over the rounds.

How to read it: ``ratio`` = median pvae time / median hand time, per epoch, with
``pvae.fit``'s default settings (monitoring on, fused Adam) against the hand loop as usually
written (torch's default Adam); 1.00 means no overhead. In brackets: the
smallest and largest per-round ratio (the pvae run over the hand run of the same round; they ran
side by side, so this range shows how much concurrent load on the machine moved the numbers).
``mon=0/fused`` = ``pvae.fit(monitor_size=0)`` against the hand loop with the same fused Adam:
the per-step cost of Pyro's SVI and pvae's guard alone, the like-for-like comparison issue 18's
goals are read from (≤ 1.10 at batch 64, ≤ 1.05 at batch 512; printed as "goal" lines).

Usage::

    python benchmarks/svi_overhead.py                      # about 8 minutes on 2 cores
    python benchmarks/svi_overhead.py --num-points 4096    # per-epoch costs weigh more
    python benchmarks/svi_overhead.py --elbo meanfield --batch-sizes 64 --repeats 5
    python benchmarks/svi_overhead.py --no-validation      # Pyro and torch checks off
    python benchmarks/svi_overhead.py --data-dim 16 --hidden-sizes 8 8 --latent-dim 4 \
        --num-points 4096                                  # the per-step overhead alone
    python benchmarks/svi_overhead.py --device cuda --json svi_overhead.json

Pyro validates traces and distribution arguments by default (``pyro.enable_validation``);
``pvae.fit`` runs those checks on the first step of every epoch (``validate_every_step=True``:
on all), and torch's distributions in the hand loop check their arguments at every step (torch's
default). ``--no-validation`` turns both off.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import pyro
import torch
from _machine import describe, machine, synchronize
from torch import nn
from torch.distributions import Normal, kl_divergence

import pvae

DATA_DIM = 784
LATENT_DIM = 64
HIDDEN_SIZES = (512, 512)
LR = 1e-3
SEED = 0
VARIANTS = ("pvae", "pvae_nomon", "hand", "hand_fused")
DEFAULT_MONITOR_SIZE = inspect.signature(pvae.fit).parameters["monitor_size"].default
# Issue 18's goals for pvae.fit(monitor_size=0) against the hand loop with the same fused Adam.
GOALS = {64: 1.10, 512: 1.05}


class HandEncoder(nn.Module):
    """The forward pass of :class:`pvae.networks.NormalEncoder` as a plain ``nn.Module``
    around a copy of its MLP, so that no Pyro machinery runs on the hand-written side."""

    def __init__(self, net: nn.Module, latent_dim: int, scale_floor: float):
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim
        self.scale_floor = scale_floor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(x).split(self.latent_dim, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + self.scale_floor


@dataclass
class Result:
    """Timings of one (ELBO, batch size) configuration, in seconds per epoch."""

    elbo: str
    batch_size: int
    steps_per_epoch: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)

    def median(self, variant: str) -> float:
        return statistics.median(self.seconds[variant])

    def ratio(self, variant: str, baseline: str = "hand") -> float:
        return self.median(variant) / self.median(baseline)

    def paired_ratios(self, variant: str, baseline: str = "hand") -> list[float]:
        pairs = zip(self.seconds[variant], self.seconds[baseline], strict=True)
        return [a / b for a, b in pairs]

    def overhead_per_step(self) -> float:
        """Seconds a step of ``pvae.fit(monitor_size=0)`` takes over the fused hand loop's."""
        return (self.median("pvae_nomon") - self.median("hand_fused")) / self.steps_per_epoch

    def max_loss_difference(self) -> float:
        """Largest relative difference between pvae's and the hand loop's epoch losses."""
        return max(
            abs(a - b) / abs(b)
            for a, b in zip(self.losses["pvae"], self.losses["hand"], strict=True)
        )


def build_pair(device: torch.device) -> tuple[nn.Module, nn.Module]:
    """A fresh model and guide with the same initial weights every call."""
    torch.manual_seed(SEED)
    model = pvae.build_model("normal-fixed", DATA_DIM, LATENT_DIM, HIDDEN_SIZES)
    guide = pvae.build_guide("diag-normal", model, HIDDEN_SIZES)
    return model.to(device), guide.to(device)


Run = Callable[[], list[float]]


def prepare_pvae(
    data: torch.Tensor, *, epochs: int, batch_size: int, elbo: str, monitor_size: int | None
) -> Run:
    """Build a fresh pair (untimed) and return the timed call, ``pvae.fit`` itself.

    ``monitor_size=None`` leaves ``pvae.fit``'s default."""
    pyro.clear_param_store()
    model, guide = build_pair(data.device)
    options = {} if monitor_size is None else {"monitor_size": monitor_size}

    def run() -> list[float]:
        history = pvae.fit(
            model,
            guide,
            data,
            epochs=epochs,
            batch_size=batch_size,
            lr=LR,
            elbo=elbo,
            num_particles=1,
            seed=SEED,
            progress=False,
            **options,
        )
        return history.column("loss").tolist()

    return run


def prepare_hand(
    data: torch.Tensor, *, epochs: int, batch_size: int, elbo: str, fused: bool
) -> Run:
    """Copy the networks of a fresh pair (untimed) and return the timed hand-written loop, which
    returns the per-epoch loss per point, computed as ``pvae.fit`` does. ``fused``: Adam with
    ``fused=True`` (as ``pvae.fit``'s default optimizer), else torch's default Adam."""
    model, guide = build_pair(data.device)
    encoder = HandEncoder(
        copy.deepcopy(guide.encoder.net), guide.encoder.latent_dim, guide.encoder.scale_floor
    )
    decoder = copy.deepcopy(model.decoder.net)
    num_points = data.shape[0]
    batch_size = min(batch_size, num_points)

    def run() -> list[float]:
        parameters = [*encoder.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=LR, **({"fused": True} if fused else {}))
        # The same random numbers as pvae.fit(seed=SEED): its first permutation picks the
        # monitoring subset, the following ones the batch order; eps comes from the global RNG.
        torch.manual_seed(SEED)
        generator = torch.Generator()
        generator.manual_seed(SEED)
        torch.randperm(num_points, generator=generator)
        losses = []
        for _ in range(epochs):
            encoder.train()
            decoder.train()
            total = 0.0
            order = torch.randperm(num_points, generator=generator).to(data.device)
            for batch in order.split(batch_size):
                x = data[batch]
                loc, scale = encoder(x)
                q = Normal(loc, scale)
                z = q.rsample()
                recon = Normal(decoder(z), 1.0).log_prob(x).sum(-1)
                prior = Normal(loc.new_zeros(()), loc.new_ones(()))
                if elbo == "meanfield":
                    kl = kl_divergence(q, prior).sum(-1)
                else:
                    kl = (q.log_prob(z) - prior.log_prob(z)).sum(-1)
                loss = -(recon - kl).sum() * (num_points / x.shape[0])
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                total += loss.item() * x.shape[0]
            losses.append(total / num_points**2)
        return losses

    return run


def timed(run: Run, device: torch.device) -> tuple[float, list[float]]:
    synchronize(device)
    start = time.perf_counter()
    losses = run()
    synchronize(device)
    return time.perf_counter() - start, losses


def measure(data: torch.Tensor, *, elbo: str, batch_size: int, epochs: int, repeats: int) -> Result:
    prepare: dict[str, Callable[[int], Run]] = {
        "pvae": lambda e: prepare_pvae(
            data, epochs=e, batch_size=batch_size, elbo=elbo, monitor_size=None
        ),
        "pvae_nomon": lambda e: prepare_pvae(
            data, epochs=e, batch_size=batch_size, elbo=elbo, monitor_size=0
        ),
        "hand": lambda e: prepare_hand(
            data, epochs=e, batch_size=batch_size, elbo=elbo, fused=False
        ),
        "hand_fused": lambda e: prepare_hand(
            data, epochs=e, batch_size=batch_size, elbo=elbo, fused=True
        ),
    }
    steps = -(-data.shape[0] // min(batch_size, data.shape[0]))
    result = Result(elbo, batch_size, steps, {v: [] for v in VARIANTS})
    for variant in VARIANTS:  # warm-up, untimed
        prepare[variant](1)()
        pyro.clear_param_store()
    for repeat in range(repeats):
        order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            seconds, losses = timed(prepare[variant](epochs), data.device)
            pyro.clear_param_store()
            result.seconds[variant].append(seconds / epochs)
            result.losses[variant] = losses
    return result


def format_table(results: Sequence[Result]) -> str:
    def ratio(result: Result, variant: str, baseline: str) -> str:
        paired = result.paired_ratios(variant, baseline)
        return f"{result.ratio(variant, baseline):.2f} [{min(paired):.2f}-{max(paired):.2f}]"

    header = (
        f"{'elbo':<10}{'batch':>6}{'steps':>6}{'hand s/ep':>11}{'pvae s/ep':>11}"
        f"{'ratio [range]':>19}{'fused s/ep':>12}{'mon=0 s/ep':>12}"
        f"{'mon=0/fused [range]':>22}{'ms/step more':>14}{'max|Δloss|':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.elbo:<10}{r.batch_size:>6}{r.steps_per_epoch:>6}{r.median('hand'):>11.3f}"
            f"{r.median('pvae'):>11.3f}{ratio(r, 'pvae', 'hand'):>19}"
            f"{r.median('hand_fused'):>12.3f}{r.median('pvae_nomon'):>12.3f}"
            f"{ratio(r, 'pvae_nomon', 'hand_fused'):>22}{r.overhead_per_step() * 1e3:>14.2f}"
            f"{r.max_loss_difference():>12.1e}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--num-points",
        type=int,
        default=16384,
        help="N (default 16384: per-epoch costs, such as monitoring 1,024 points, weigh as "
        "little as on a data set of MNIST's size; smaller N shows them)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument(
        "--elbo", nargs="+", choices=sorted(pvae.training.ELBOS), default=["meanfield", "trace"]
    )
    parser.add_argument("--data-dim", type=int, default=DATA_DIM, help=f"d (default {DATA_DIM})")
    parser.add_argument(
        "--latent-dim", type=int, default=LATENT_DIM, help=f"latent width (default {LATENT_DIM})"
    )
    parser.add_argument(
        "--hidden-sizes",
        type=int,
        nargs="+",
        default=list(HIDDEN_SIZES),
        help="MLP hidden widths, encoder and decoder (default 512 512); small ones (e.g. "
        "--data-dim 16 --hidden-sizes 8 8 --latent-dim 4) leave little but the per-step "
        "overhead",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--no-validation",
        action="store_true",
        help="pyro.enable_validation(False) for the whole run: Pyro's trace checks off, and "
        "torch's distribution argument checks off on both sides",
    )
    parser.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda"')
    parser.add_argument("--json", metavar="PATH", default=None, help="also write results here")
    args = parser.parse_args(argv)
    for name in ("num_points", "epochs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be >= 1")
    if min(args.data_dim, args.latent_dim, *args.hidden_sizes) < 1:
        parser.error("--data-dim, --latent-dim and --hidden-sizes must be >= 1")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to torch")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    global DATA_DIM, LATENT_DIM, HIDDEN_SIZES  # the sizes build_pair reads
    args = parse_args(argv)
    DATA_DIM, LATENT_DIM, HIDDEN_SIZES = args.data_dim, args.latent_dim, tuple(args.hidden_sizes)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(not args.no_validation)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(SEED)
    data = torch.rand(args.num_points, DATA_DIM, generator=generator).to(device)

    info = machine(device)
    print(
        f"svi_overhead: pvae.fit vs a hand-written PyTorch loop, MLP {DATA_DIM}-"
        f"{'-'.join(map(str, HIDDEN_SIZES))}-{LATENT_DIM} (both ways), N={args.num_points}, "
        f"{args.epochs} epoch(s) per run, median of {args.repeats} interleaved rounds, "
        f"device {device}, validation {'off' if args.no_validation else 'on'}"
    )
    print(describe(info))
    start = time.perf_counter()
    results = []
    for elbo in args.elbo:
        for batch_size in args.batch_sizes:
            results.append(
                measure(
                    data,
                    elbo=elbo,
                    batch_size=batch_size,
                    epochs=args.epochs,
                    repeats=args.repeats,
                )
            )
            print(f"  done: elbo={elbo} batch={batch_size}", flush=True)
    wall = time.perf_counter() - start
    print()
    print(format_table(results))
    print()
    print(
        f"ratio = pvae / hand per epoch, pvae.fit with its defaults "
        f"(monitor_size={DEFAULT_MONITOR_SIZE}, fused Adam) against the loop with torch's "
        "default Adam; mon=0/fused = pvae.fit(monitor_size=0) against the loop with the same "
        "fused Adam and no monitoring (Pyro's SVI and pvae's guard alone)."
    )
    for r in results:
        goal = GOALS.get(r.batch_size)
        if goal is None:
            continue
        ratio = r.ratio("pvae_nomon", "hand_fused")
        print(
            f"goal (issue 18): elbo={r.elbo} batch={r.batch_size}: mon=0/fused {ratio:.2f} "
            f"<= {goal:.2f}: {'met' if ratio <= goal else 'not met'}"
        )
    print(f"benchmark wall time: {wall:.1f} s")
    if args.json:
        payload = {
            "config": {**vars(args), "hidden_sizes": HIDDEN_SIZES, "latent_dim": LATENT_DIM},
            "machine": info,
            "wall_seconds": wall,
            "results": [
                {
                    **asdict(r),
                    "median_seconds_per_epoch": {v: r.median(v) for v in VARIANTS},
                    "ratio": r.ratio("pvae"),
                    "ratio_nomon": r.ratio("pvae_nomon"),
                    "ratio_nomon_vs_fused": r.ratio("pvae_nomon", "hand_fused"),
                    "max_relative_loss_difference": r.max_loss_difference(),
                }
                for r in results
            ],
        }
        with open(args.json, "w") as file:
            json.dump(payload, file, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
