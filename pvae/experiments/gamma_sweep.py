"""The γ sweep: active dimensions against a fixed decoder variance (category (ii) collapse)."""

from __future__ import annotations

import math

import torch

from pvae.theory.ppca import active_dimensions
from pvae.validation import (
    SEED_LIMIT,
    check_bool,
    check_data,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_sizes,
)

__all__ = ["gamma_sweep"]


def gamma_sweep(
    data: torch.Tensor,
    variances,
    *,
    latent_dim: int,
    hidden_sizes=(),
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    final_lr: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    r"""Proposition 2 / category (ii) collapse [1]: for each fixed decoder variance γ in
    ``variances``, train a VAE with that γ (:class:`~pvae.likelihoods.NormalDecoder`
    ``variance="fixed"``, an amortized diagonal Normal guide, both MLPs of ``hidden_sizes``;
    ``()`` gives the linear VAE) and count its active units (Burda et al.'s activity > 0.01).

    Each row also carries the closed-form count for the linear-Gaussian model,
    :func:`active_dimensions` (the eigenvalues of the data's covariance above γ), which the
    linear VAE should match and which the nonlinear VAE's thresholding at finite γ echoes.

    :param torch.Tensor data: training data ``(n, d)``.
    :param variances: the γ values (each > 0).
    :param int latent_dim: q.
    :param hidden_sizes: encoder and decoder hidden widths (default ``()``: linear).
    :param int epochs: epochs per γ (default 100).
    :param int batch_size: minibatch size (default 128).
    :param float lr: Adam's learning rate (default 1e-3).
    :param float final_lr: if given, the learning rate decays geometrically from ``lr`` to this
        by the last step (:class:`~pvae.training.JointOptim` ``lr_decay``). Adam's step noise
        at a constant rate keeps the encoder means of switched-off dimensions jittering, which
        the activity threshold 0.01 can count as active; decaying the rate lets them settle.
    :param int seed: seed of the i-th fit is ``seed + i`` (default 0).
    :param bool progress: show a tqdm bar over the γ values (default ``True``).
    :returns: one dict per γ: ``gamma``, ``active`` (trained), ``closed_form``, ``kl``
        (total KL per point, nats), ``elbo`` (nats per point).

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? ICML.
    """
    from tqdm import tqdm

    from pvae.diagnostics.latent import diagnose
    from pvae.estimation.terms import elbo_terms
    from pvae.guides import DiagNormalGuide
    from pvae.likelihoods import NormalDecoder
    from pvae.models import VAE
    from pvae.training.fit import fit
    from pvae.training.optim import JointOptim

    check_data(data, "data")
    if data.shape[0] < 2:
        raise ValueError(
            f"data needs at least 2 points for a covariance, got shape {tuple(data.shape)}"
        )
    if isinstance(variances, (str, bytes)) or not hasattr(variances, "__iter__"):
        raise ValueError(f"variances must be a sequence of numbers γ > 0, got {variances!r}")
    variances = [check_positive_float(v, "every entry of variances") for v in variances]
    if not variances:
        raise ValueError("variances must name at least one γ")
    check_positive_int(latent_dim, "latent_dim")
    hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes")
    check_seed(seed)
    if seed + len(variances) > SEED_LIMIT:  # the i-th fit's seed is seed + i
        raise ValueError(
            f"seed must leave room for one seed per γ (seed + {len(variances)} <= "
            f"{SEED_LIMIT}), got {seed}"
        )
    check_bool(progress, "progress")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    if final_lr is not None and not 0 < check_positive_float(final_lr, "final_lr") <= lr:
        raise ValueError(f"final_lr must be in (0, lr={lr}], got {final_lr!r}")
    num_steps = epochs * math.ceil(data.shape[0] / min(batch_size, data.shape[0]))
    decay = 1.0 if final_lr is None else (final_lr / lr) ** (1 / max(num_steps - 1, 1))
    eigenvalues = torch.linalg.eigvalsh(torch.cov(data.T, correction=0))
    rows = []
    for index, variance in enumerate(tqdm(variances, desc="γ sweep", disable=not progress)):
        torch.manual_seed(seed + index)
        decoder = NormalDecoder(
            latent_dim, data.shape[1], hidden_sizes, variance="fixed", scale=variance**0.5
        )
        model = VAE(decoder).to(data.device, data.dtype)
        guide = DiagNormalGuide(data.shape[1], latent_dim, hidden_sizes).to(data.device, data.dtype)
        fit(
            model,
            guide,
            data,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=JointOptim(torch.optim.Adam, {"lr": lr}, lr_decay=decay),
            seed=seed + index,
            monitor_size=0,
            watchdog=False,
            progress=False,
        )
        found = diagnose(model, guide, data)
        with torch.no_grad():
            elbo = float(elbo_terms(model, guide, data)["elbo"].mean())
        rows.append(
            {
                "gamma": variance,
                "active": found.num_active,
                "closed_form": active_dimensions(eigenvalues, variance, latent_dim),
                "kl": float(found.kl_per_dim.sum()),
                "elbo": elbo,
            }
        )
    return rows
