"""``pvae demo`` and ``pvae experiment``."""

from __future__ import annotations

import json
import time

__all__ = ["demo_command", "experiment_command"]


def demo_command(args) -> int:
    import dataclasses

    from pvae.experiments.demo import (
        QUICK,
        DemoSettings,
        format_construction,
        format_final,
        format_table,
        run_demo,
    )

    data = _data_options(args)
    if args.quick and args.epochs is not None:
        raise ValueError("--quick runs 20 epochs; leave out --epochs or --quick")
    settings = dataclasses.replace(QUICK if args.quick else DemoSettings(), seed=args.seed, **data)
    if args.epochs is not None:
        settings = dataclasses.replace(settings, epochs=args.epochs)
    if args.ais_steps is not None:
        settings = dataclasses.replace(settings, ais_steps=args.ais_steps)
    start = time.perf_counter()
    rows = run_demo(args.out, settings=settings, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    print(
        "\nIs the Gaussian VAE well-posed? A ladder: bounded with a fixed variance, a floor ξ "
        "or a Bernoulli likelihood; unbounded once the decoder reproduces one training point "
        "with a per-pixel variance σ²(z) (Mattei & Frellsen, 2018); unbounded once it "
        "reproduces every training point with one shared γ (Dai & Wipf, 2019)."
    )
    print(
        f"\n{len(rows)} runs in {seconds:.0f} s "
        f"on {settings.data}, dequantized (Bernoulli: binarized), from one seed; each run "
        f"{settings.epochs} epochs on n = {settings.num_train} training images, or as many "
        f"steps on the larger set. log p̂(x) in nats per point by importance sampling (K = "
        f"{settings.num_samples}, ± its Monte Carlo standard error) on {settings.num_points} "
        f"training and {settings.num_points} held-out points; Δ train = the change of the "
        f"training log p̂ over the last {settings.window} of {settings.num_tracks} tracked "
        "epochs ± its 99% interval; min σ²(x) = the smallest decoder variance of a tracked "
        "training point (geometric mean over pixels); memorised = training / held-out points "
        "reproduced more finely than the data's noise (mean and variance); reliable = the "
        "share of tracked training points whose IS estimate the calibrated trust status calls "
        "reliable (it needs K ≥ 300; docs/trust_calibration.md); bound = the largest log p(x) "
        "the likelihood allows. Each verdict is read from these numbers:\n"
    )
    print(format_table(rows))
    if settings.ais_steps:
        print(
            f"\nThe final models' log p̂ by the estimator the trust status allows: IS (K = "
            f"{settings.num_samples}) with the share of its estimates the calibrated status "
            "calls reliable, and, where that share is below 100%, annealed importance "
            f"sampling (AIS: {settings.ais_chains} chains of {settings.ais_steps} HMC steps per "
            "point, from the encoder to the posterior) on the same points, ± its Monte Carlo "
            "standard error; AIS − IS ± its paired standard error over the points. Both are "
            "lower bounds in expectation: where AIS is higher, IS errs low by at least that "
            "much.\n"
        )
        print(format_final(rows, settings))
    print("\nWhy (what each verdict was read from):")
    for row in rows:
        print(f"- {row['data']}, {row['variant']}: {row['status']}.")
        for reason in row["reasons"].split(" | "):
            print(f"    {reason}")
    construction = json.loads((args.out / "construction.json").read_text())
    print()
    print(format_construction(construction))
    print(
        f"\nwrote {args.out / 'demo.png'}, {args.out / 'construction.png'}, "
        f"{args.out / 'demo.csv'}, {args.out / 'demo.json'}, {args.out / 'history.json'}"
    )
    return 0


def _data_options(args) -> dict:
    """The data a command names: ``--data``, ``--data-root`` and ``--levels``, checked
    together (:func:`pvae.data.catalog.check_data_choice`); and its results folder
    ``--out``, checked before anything runs."""
    from pvae.cli.options import DATA_FLAGS
    from pvae.data.catalog import check_data_choice
    from pvae.files import check_output_path

    check_output_path(args.out, "--out", folder=True)

    check_data_choice(
        args.data,
        args.data_root,
        args.levels,
        names=DATA_FLAGS,
    )
    return {"data": args.data, "data_root": args.data_root, "num_levels": args.levels or 256}


def _collapse_depth(args) -> int:
    import dataclasses

    from pvae.cli.options import ray_options
    from pvae.experiments.collapse_depth import (
        DEFAULT,
        FULL,
        format_table,
        run_collapse_depth,
        run_seeds,
    )

    ray = ray_options(args)
    settings = FULL if args.full else DEFAULT
    changes: dict = {"seed": args.seed, "max_points": args.max_points, "seeds": args.seeds}
    if args.epochs is not None:
        if args.epochs < 2:
            raise ValueError(
                f"--epochs must be at least 2 (vae-warmup warms up over the first quarter and "
                f"then trains the ELBO), got {args.epochs}"
            )
        changes.update(epochs=args.epochs, warmup_epochs=max(1, args.epochs // 4))
    if args.depths is not None:
        changes["depths"] = args.depths
    if args.variants is not None:
        changes["variants"] = args.variants
    if args.fashion_mnist is not None:
        if args.data != "digits" or args.data_root is not None:
            raise ValueError(
                "--fashion-mnist ROOT is --data fashion-mnist --data-root ROOT; give one or "
                "the other"
            )
        args.data, args.data_root = "fashion-mnist", args.fashion_mnist
    data = _data_options(args)
    data["num_levels"] = args.levels
    changes.update(data)
    settings = dataclasses.replace(settings, **changes)
    start = time.perf_counter()
    rows = run_collapse_depth(
        args.out,
        settings=settings,
        progress=not args.no_progress,
        resume=args.resume,
        **ray,
    )
    seeds = run_seeds(settings)
    where = "in this process" if ray["ray"] is None else "as Ray tasks"
    print(
        f"\nDai et al. (2020), Sec. 6 on {settings.data}: {len(settings.depths)} depths x "
        f"{len(rows) // len(settings.depths) // len(seeds)} variants x {len(seeds)} "
        f"seed{'s' * (len(seeds) > 1)} ({where}), width {settings.width}, latent "
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


def _iwae_vs_elbo(args) -> int:
    import dataclasses

    from pvae.experiments.iwae_vs_elbo import (
        DEFAULT,
        format_comparisons,
        format_table,
        run_iwae_vs_elbo,
    )

    flags = {
        "epochs": args.epochs,
        "num_particles": args.particles,
        "seeds": args.seeds,
        "num_samples": args.num_samples,
        "ais_steps": args.ais_steps,
    }
    changes = {key: value for key, value in flags.items() if value is not None}
    if changes.get("num_particles") == 1:
        raise ValueError("--particles must be at least 2 (with K = 1 IWAE_K is the ELBO), got 1")
    data = _data_options(args)
    data["num_levels"] = args.levels
    settings = dataclasses.replace(DEFAULT, max_points=args.max_points, **changes, **data)
    start = time.perf_counter()
    result = run_iwae_vs_elbo(args.out, settings=settings, progress=not args.no_progress)
    saved = json.loads((args.out / "iwae_vs_elbo.json").read_text())
    print(
        f"\nBurda et al. (2016) on {settings.data}, binarized ({saved['num_train']} training, "
        f"{saved['num_test']} held-out points): Bernoulli VAEs, MLPs "
        f"{'-'.join(map(str, settings.hidden_sizes))}, latent {settings.latent_dim}, "
        f"{settings.epochs} epochs, batch {settings.batch_size}, Adam lr {settings.lr:g}, one run "
        f"per objective and seed ({len(settings.seeds)} seeds), in "
        f"{time.perf_counter() - start:.0f} s. Held-out log p̂ by importance sampling (K = "
        f"{settings.num_samples}, the encoder as proposal) ± its across-point se, its Monte "
        "Carlo se, the share of estimates the calibrated trust status calls reliable, AIS "
        f"({settings.ais_chains} chains of {settings.ais_steps} steps; — if none) and AIS − IS, "
        "the held-out ELBO, the training log p̂, KL (nats per point), active units and the "
        "training time:\n"
    )
    print(format_table(result["rows"]))
    print(
        "\nPaired differences of held-out log p̂ (the same points; ± the across-point se of "
        "the differences, and the Monte Carlo se):\n"
    )
    print(format_comparisons(result["comparisons"]))
    names = ("iwae_vs_elbo.png", "iwae_vs_elbo.csv", "iwae_vs_elbo.json")
    print(f"\nwrote {', '.join(str(args.out / name) for name in names)}")
    return 0


def _gamma_sweep(args) -> int:
    import importlib

    from pvae.cli.options import ray_options

    sweep = importlib.import_module("pvae.experiments.gamma_sweep")
    ray = ray_options(args)
    data = _data_options(args)
    data["num_levels"] = args.levels
    gammas = sweep.DEFAULT_GAMMAS if args.gammas is None else args.gammas
    start = time.perf_counter()
    rows = sweep.run_gamma_sweep(
        args.out,
        **data,
        gammas=gammas,
        latent_dim=args.latent_dim,
        hidden_sizes=args.hidden,
        epochs=args.epochs,
        lr=args.lr,
        final_lr=args.lr / 100,
        seed=args.seed,
        progress=not args.no_progress,
        resume=args.resume,
        **ray,
    )
    saved = json.loads((args.out / "gamma_sweep.json").read_text())
    network = "a linear" if not args.hidden else "an MLP " + "-".join(map(str, args.hidden))
    where = "in this process" if ray["ray"] is None else "as Ray tasks"
    print(
        f"\nDai et al. (2020), Proposition 2 on {args.data} ({saved['num_train']} training "
        f"points, d = {saved['data_dim']}): {network} VAE with latent {args.latent_dim} and a "
        f"fixed decoder variance γ, {args.epochs} epochs per γ (Adam {args.lr:g} decaying "
        f"100x), {len(rows)} fits {where} in {time.perf_counter() - start:.0f} s. Active units "
        "(Burda et al.'s activity > 0.01) against the closed-form count of the linear-Gaussian "
        "model (eigenvalues of the data covariance above γ), the KL and the ELBO (nats per "
        "point):\n"
    )
    print(sweep.format_table(rows))
    names = ("gamma_sweep.png", "gamma_sweep.csv", "gamma_sweep.json")
    print(f"\nwrote {', '.join(str(args.out / name) for name in names)}")
    return 0


def _missing_data(args) -> int:
    from pvae.experiments.missing_data import (
        MissingDataSettings,
        format_comparisons,
        format_table,
        run_missing_data,
    )

    flags = {
        "epochs": args.epochs,
        "num_points": args.num_points,
        "max_train": args.max_points,
        "num_steps": args.num_steps,
        "num_samples": args.num_samples,
        "num_particles": args.num_particles,
    }
    data = _data_options(args)
    data["num_levels"] = args.levels
    settings = MissingDataSettings(
        **{key: value for key, value in flags.items() if value is not None},
        **data,
        seed=args.seed,
    )
    start = time.perf_counter()
    rows = run_missing_data(args.out, settings=settings, progress=not args.no_progress)
    saved = json.loads((args.out / "missing_data.json").read_text())
    print(
        f"\nMattei & Frellsen (2018), Sec. 4 on {settings.data} ({saved['num_train']} training "
        f"points; {saved['num_test']} held-out points imputed): VAEs with MLPs "
        f"{'-'.join(map(str, settings.hidden_sizes))}, latent {settings.latent_dim}, "
        f"{settings.epochs} epochs; {settings.num_samples} imputations per point "
        f"({settings.num_steps} steps per chain, {settings.num_particles} proposals for "
        f"importance resampling), in {time.perf_counter() - start:.0f} s. The error of each "
        "single imputation (the conditional mean; each entry's mode on binarized data) over "
        "the missing entries: RMSE per point, mean ± se across points, or F1 ± its jackknife "
        "se, and the evidence behind it:\n"
    )
    print(format_table(rows))
    if saved["comparisons"]:
        print(
            "\nMWG against each other method on the same points: the paired difference of "
            "the error (RMSE: lower is better; F1: higher is better) ± its paired se:\n"
        )
        print(format_comparisons(saved["comparisons"]))
    names = ("missing_data.png", "missing_data.csv", "missing_data.json")
    print(f"\nwrote {', '.join(str(args.out / name) for name in names)}")
    return 0


def experiment_command(args) -> int:
    commands = {
        "collapse-depth": _collapse_depth,
        "gamma-sweep": _gamma_sweep,
        "iwae-vs-elbo": _iwae_vs_elbo,
        "missing-data": _missing_data,
    }
    return commands[args.experiment](args)
