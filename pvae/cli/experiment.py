"""``pvae demo`` and ``pvae experiment``."""

from __future__ import annotations

import json
import time

__all__ = ["demo_command", "experiment_command"]


def demo_command(args) -> int:
    from pvae.experiments.demo import DemoSettings, format_construction, format_table, run_demo

    if args.data == "digits" and args.levels is not None:
        raise ValueError("--levels applies to a --data file; the digits have 17 grey levels")
    if args.quick and args.epochs is not None:
        raise ValueError("--quick runs 3 epochs; leave out --epochs or --quick")
    data = {"data": args.data, "num_levels": args.levels or 256, "seed": args.seed}
    settings = DemoSettings(epochs=args.epochs or 40, **data)
    if args.quick:
        settings = DemoSettings(epochs=3, num_points=20, num_samples=20, **data)
    rows = run_demo(args.out, settings=settings, progress=not args.no_progress)
    print(
        f"\nIs the Gaussian VAE well-posed? {settings.epochs} epochs each, log p̂(x) in nats per "
        f"point (K = {settings.num_samples}, {settings.num_points} training and "
        f"{settings.num_points} held-out points), trend = slope of the training log p̂ over the "
        "last 5 epochs, bound = the largest log p(x) the likelihood allows:\n"
    )
    print(format_table(rows))
    construction = json.loads((args.out / "construction.json").read_text())
    print()
    print(format_construction(construction))
    print(
        f"\nwrote {args.out / 'demo.png'}, {args.out / 'construction.png'}, "
        f"{args.out / 'demo.csv'}, {args.out / 'demo.json'}"
    )
    return 0


def _collapse_depth(args) -> int:
    import dataclasses

    from pvae.experiments.collapse_depth import DEFAULT, FULL, format_table, run_collapse_depth

    settings = FULL if args.full else DEFAULT
    changes: dict = {"seed": args.seed, "max_points": args.max_points}
    if args.epochs is not None:
        if args.epochs < 2:
            raise ValueError(
                f"--epochs must be at least 2 (vae-warmup warms up over the first quarter and "
                f"then trains the ELBO), got {args.epochs}"
            )
        changes.update(epochs=args.epochs, warmup_epochs=max(1, args.epochs // 4))
    if args.depths is not None:
        changes["depths"] = args.depths
    if args.fashion_mnist is not None:
        changes.update(data="fashion-mnist", data_root=args.fashion_mnist)
    settings = dataclasses.replace(settings, **changes)
    start = time.perf_counter()
    rows = run_collapse_depth(args.out, settings=settings, progress=not args.no_progress)
    print(
        f"\nDai et al. (2020), Sec. 6 on {settings.data}: {len(settings.depths)} depths x "
        f"{len(rows) // len(settings.depths)} variants, width {settings.width}, latent "
        f"{settings.latent_dim}, {settings.epochs} epochs, batch {settings.batch_size}, Adam lr "
        f"{settings.lr:g}, in {time.perf_counter() - start:.0f} s. Training reconstruction error "
        "‖x − μ_x(E_q[z|x])‖² per point, the learned γ, and for the VAEs the KL (nats per "
        "point), active units and encoder scales σ_z:\n"
    )
    print(format_table(rows))
    saved = json.loads((args.out / "collapse_depth.json").read_text())
    print(
        f"\nreconstructing every point by the training mean (a decoder that ignores z): "
        f"{saved['baseline']:.3f}"
    )
    names = ("collapse_depth.png", "collapse_depth.csv", "collapse_depth.json")
    print(
        f"\nwrote {', '.join(str(args.out / name) for name in names)}, "
        f"{args.out / 'collapse_depth_scales.npz'}"
    )
    return 0


def experiment_command(args) -> int:
    return {"collapse-depth": _collapse_depth}[args.experiment](args)
