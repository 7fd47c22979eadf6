"""Which of Dai et al.'s collapse categories (i)–(v) a trained pair shows, and why."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pvae.display import Displayed
from pvae.theory.ppca import active_dimensions
from pvae.validation import check_positive_float

__all__ = [
    "CATEGORIES",
    "DEGENERATE_VARIANCE_RATIO",
    "CollapseReport",
    "LatentDiagnostics",
    "collapse_report",
]

#: Dai et al.'s taxonomy of posterior collapse [Sec. 3].
CATEGORIES = {
    "i": "latent dimensions the data do not need are set to the prior (benign)",
    "ii": "a fixed decoder variance γ too large switches dimensions off",
    "iii": "a learned decoder variance collapses on individual points (degenerate likelihood)",
    "iv": "a decoder able to model x without z ignores z",
    "v": "a bad local minimum of the (deep) autoencoder objective",
}


#: A decoder variance below this share of the data's mean variance per dimension counts as
#: degenerate for category (iii).
DEGENERATE_VARIANCE_RATIO = 1e-3


@dataclass(repr=False)
class LatentDiagnostics(Displayed):
    r"""Per latent dimension, over the whole data set (every field has shape ``(q,)`` but
    ``mutual_information``, a scalar, and ``scales``, ``(n, q)``).

    :ivar kl_per_dim: mean over points of KL(q(z_u | x) ‖ p(z_u)), nats.
    :ivar activity: Cov_x(E_q[z_u | x]), the variance over points of the posterior mean.
    :ivar active: ``activity > threshold`` (Burda et al.: 0.01).
    :ivar mutual_information: I(x; z) = E_x KL(q(z | x) ‖ q(z)), nats, with the aggregate
        posterior q(z) = (1/n) Σ_j q(z | x_j) over the whole data set.
    :ivar scales: the encoder's σ_z of every point and dimension (for Dai et al.'s Fig. 2).
    :ivar reconstruction_error: mean over points of :math:`\|x - \mathbb{E}[x \mid z =
        \mathbb{E}_q z]\|^2` (the decoder's mean at the posterior mean).
    :ivar decoder_variance: the decoder's variance at the posterior mean, averaged over points
        and pixels (``nan`` without a Normal likelihood).
    :ivar min_decoder_variance: its smallest value over points and pixels (``nan`` likewise).
    :ivar variance_learned: whether the decoder variance is learned, as the model states it
        (``variance_learned``) or as the trace shows it (:func:`pvae.diagnostics.read_likelihood`);
        ``None`` without a Normal likelihood.
    :ivar log_density_bound: the bound on log p(x) of one point, stated by the model or read
        from the trace (``inf`` if none, ``nan`` if unknown: never read as bounded).
    :ivar data_eigenvalues: eigenvalues of the data's sample covariance, largest first.
    :ivar likelihood_family: the observed site's distribution class (``None`` if not read).
    :ivar variance_depends_on_z: whether the decoder variance is a function of z (a variance
        network), ``None`` without a Normal likelihood.
    """

    kl_per_dim: torch.Tensor
    activity: torch.Tensor
    active: torch.Tensor
    mutual_information: float
    scales: torch.Tensor
    reconstruction_error: float = math.nan
    decoder_variance: float = math.nan
    min_decoder_variance: float = math.nan
    variance_learned: bool | None = None
    log_density_bound: float = math.nan
    data_eigenvalues: torch.Tensor | None = None
    likelihood_family: str | None = None
    variance_depends_on_z: bool | None = None

    @property
    def num_active(self) -> int:
        return int(self.active.sum())

    @property
    def latent_dim(self) -> int:
        return self.active.shape[0]

    def _display(self):
        title = (
            f"LatentDiagnostics: {self.num_active} of {self.latent_dim} latent units active "
            f"(activity Cov_x E_q[z_u | x] > 0.01) over {self.scales.shape[0]} points"
        )
        learned = {True: "learned", False: "fixed", None: "unknown"}
        bound = self.log_density_bound
        rows = [
            ("KL(q ‖ p)", f"{self.kl_per_dim.sum().item():.4g} nats per point (closed form)"),
            (
                "I(x; z)",
                f"{self.mutual_information:.4g} nats (Monte Carlo, aggregate posterior; no se)",
            ),
            ("reconstruction", f"{self.reconstruction_error:.4g} (‖x − E[x | z = E_q z]‖²)"),
        ]
        if math.isnan(self.decoder_variance):
            rows.append(("decoder variance", "none (not a Normal likelihood)"))
        else:
            rows.append(
                (
                    "decoder variance",
                    f"{self.decoder_variance:.4g} mean, {self.min_decoder_variance:.3g} smallest "
                    f"(at the posterior means); {learned[self.variance_learned]}"
                    + (", a function of z" if self.variance_depends_on_z else ""),
                )
            )
        rows.append(
            (
                "bound on log p(x)",
                "unknown (neither stated by the model nor read from the trace)"
                if math.isnan(bound)
                else "none"
                if math.isinf(bound)
                else f"{bound:.4g} nats per point",
            )
        )
        return title, rows

    def report(self, *, reference_error: float | None = None) -> CollapseReport:
        """:func:`collapse_report` of these diagnostics."""
        return collapse_report(self, reference_error=reference_error)


@dataclass(repr=False)
class CollapseReport(Displayed):
    """What :func:`collapse_report` finds: for each category of :data:`CATEGORIES` a verdict,
    ``"indicated"``, ``"possible"``, ``"not indicated"`` or ``"unknown"`` (the evidence it
    needs is not there: a model that states no variance_learned), and the evidence behind it.
    ``str(report)`` reads as a short paragraph per category."""

    num_active: int
    latent_dim: int
    verdicts: dict[str, str]
    reasons: dict[str, str]

    @property
    def indicated(self) -> list[str]:
        """The categories the evidence points to."""
        return [key for key, verdict in self.verdicts.items() if verdict == "indicated"]

    def _display(self):
        title = (
            f"CollapseReport (Dai, Wang & Wipf 2020): {self.num_active} of {self.latent_dim} "
            "latent units active; str() gives the reasons"
        )
        return title, [
            (f"({key}) {CATEGORIES[key]}", verdict, self.reasons[key])
            for key, verdict in self.verdicts.items()
        ]

    def __str__(self) -> str:
        lines = [f"active units: {self.num_active} of {self.latent_dim}"]
        for key, verdict in self.verdicts.items():
            lines.append(f"({key}) {CATEGORIES[key]}: {verdict.upper()}. {self.reasons[key]}")
        return "\n".join(lines)


def collapse_report(
    diagnostics: LatentDiagnostics, *, reference_error: float | None = None
) -> CollapseReport:
    r"""Name the categories of Dai et al.'s taxonomy [1, Sec. 3] that ``diagnostics`` point to.

    The rules (each verdict's reason quotes the numbers it used), with :math:`k` active units
    of :math:`q`, decoder variance γ, :math:`\bar\gamma` the data's mean variance per
    dimension and :math:`m = \#\{\lambda_j > \gamma\}` the data-covariance eigenvalues above γ
    (the dimensions the linear-Gaussian VAE keeps at that γ, Proposition 2):

    - (iii) *indicated* if the smallest decoder variance is below 10⁻³ γ̄ and below 1% of the
      decoder's average variance (it singles out points), and the likelihood has no floor
      (``log_density_bound`` infinite); *possible* if the variance is that small everywhere
      (a shared γ → 0: unbounded once the decoder reproduces every training point, and also
      what fitting data near a manifold looks like; the held-out likelihood tells which).
    - (ii) *indicated* if γ is fixed, :math:`k < q` and :math:`m < q`: γ itself switches
      :math:`q - m` dimensions off.
    - (i) *indicated* if :math:`0 < k < q` with γ learned and either :math:`k \ge m` (the kept
      dimensions cover what the data have above the noise level the model chose) or the
      reconstruction error is below that of PCA with :math:`k` components,
      :math:`\sum_{j > k} \lambda_j` (fewer dimensions than the linear VAE, but used well).
    - (v) *indicated* if γ is learned, :math:`k < m` and the reconstruction error is at least
      PCA's with :math:`k` components: even the linear VAE would keep :math:`m`, and this model
      gains nothing from keeping fewer (Proposition 1's collapsed point, γ = γ̄ with
      :math:`k = 0`, is the extreme); or if ``reference_error`` (e.g. an autoencoder's
      reconstruction error on the same data) is less than half this model's.
    - (iv) *possible* whenever :math:`k = 0` and :math:`I(x; z) < 0.01` nats: the decoder
      then ignores z, and only the decoder's capacity (e.g. autoregressive) tells (iv) from
      (v), which the diagnostics cannot see.

    Without a Normal likelihood (no γ) only (i), (iv) and the reference comparison apply.

    :param LatentDiagnostics diagnostics: from :func:`diagnose`.
    :param float reference_error: a reconstruction error to compare with (same data, same
        definition as ``diagnostics.reconstruction_error``), or ``None``.

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """
    if not isinstance(diagnostics, LatentDiagnostics):
        raise TypeError(
            f"diagnostics must be a LatentDiagnostics, got {type(diagnostics).__name__}"
        )
    if reference_error is not None:
        check_positive_float(reference_error, "reference_error")
    k, q = diagnostics.num_active, diagnostics.latent_dim
    gamma, learned = diagnostics.decoder_variance, diagnostics.variance_learned
    eigenvalues = diagnostics.data_eigenvalues
    mean_variance = float(eigenvalues.mean()) if eigenvalues is not None else math.nan
    normal = not math.isnan(gamma)
    m = active_dimensions(eigenvalues, gamma, q) if normal and eigenvalues is not None else None
    verdicts = dict.fromkeys(CATEGORIES, "not indicated")
    reasons = dict.fromkeys(CATEGORIES, "")

    smallest = diagnostics.min_decoder_variance
    degenerate = normal and smallest < DEGENERATE_VARIANCE_RATIO * mean_variance
    # A variance that singles out points is far below its typical value; a shared γ is not.
    localized = smallest < 0.01 * gamma
    bound = diagnostics.log_density_bound
    # nan: the model states no bound. Unknown is never read as bounded.
    unbounded = not math.isfinite(bound)
    no_floor = (
        "no floor"
        if math.isinf(bound)
        else "no known bound (the model states none; a floor under a learned variance is not "
        "in the trace)"
    )
    if degenerate and unbounded and localized:
        verdicts["iii"] = "indicated"
        reasons["iii"] = (
            f"the smallest decoder variance is {smallest:.3g}, {smallest / mean_variance:.1e} "
            f"of the data's mean variance {mean_variance:.3g} and {smallest / gamma:.1e} of "
            f"the decoder's average, and the likelihood has {no_floor}: the decoder is "
            "shrinking its variance on individual points"
        )
    elif degenerate and unbounded:
        verdicts["iii"] = "possible"
        reasons["iii"] = (
            f"the decoder variance is {gamma:.3g} everywhere, {gamma / mean_variance:.1e} of "
            f"the data's mean variance, with {no_floor}: one γ for every z is unbounded once the "
            "decoder reproduces every training point (Dai & Wipf, 2019), and γ → 0 is also "
            "what a decoder fitting data near a low-dimensional manifold does; the held-out "
            "likelihood tells them apart (it falls when training points are memorised)"
        )
    elif normal:
        reasons["iii"] = (
            f"smallest decoder variance {smallest:.3g} vs data variance {mean_variance:.3g}"
            + (
                "; the likelihood is bounded"
                if not unbounded
                else ""
                if math.isinf(bound)
                else "; whether the likelihood is bounded is unknown (the model states no bound "
                "and the variance is learned)"
            )
        )
    else:
        reasons["iii"] = "no Normal likelihood"

    if normal and learned is False:
        if k < q and m < q:
            verdicts["ii"] = "indicated"
            reasons["ii"] = (
                f"γ = {gamma:.3g} is fixed and only {m} eigenvalue(s) of the data covariance "
                f"exceed it: the linear-Gaussian VAE would keep {m} of {q} dimensions (Prop. 2); "
                f"this model keeps {k}"
            )
        else:
            reasons["ii"] = f"γ = {gamma:.3g} is fixed, but {m} eigenvalue(s) exceed it"
    elif normal and learned is None:
        verdicts["ii"] = "unknown"
        reasons["ii"] = (
            "whether γ is learned is unknown: the model does not state variance_learned and the "
            "trace was not read (set model.variance_learned = False for a fixed γ)"
        )
    else:
        reasons["ii"] = "γ is learned" if normal and learned else "no fixed γ"

    if normal and learned and m is not None:
        error = diagnostics.reconstruction_error
        # The best rank-k linear reconstruction (PCA) leaves the d − k smallest eigenvalues.
        linear_error = float(eigenvalues[k:].sum())
        if 0 < k < q and k >= m:
            verdicts["i"] = "indicated"
            reasons["i"] = (
                f"{q - k} dimension(s) are off, but the {k} kept cover the {m} eigenvalue(s) "
                f"of the data covariance above the learned γ = {gamma:.3g}"
            )
        elif k < m and error < linear_error:
            verdicts["i"] = "indicated"
            reasons["i"] = (
                f"{q - k} dimension(s) are off, fewer kept ({k}) than the linear VAE would keep "
                f"({m}), but the reconstruction error {error:.3g} is below PCA's with {k} "
                f"component(s) ({linear_error:.3g}): the kept dimensions do the work"
            )
        elif k < m:
            verdicts["v"] = "indicated"
            reasons["v"] = (
                f"{m} eigenvalue(s) of the data covariance exceed the learned γ = {gamma:.3g}, "
                f"so even the linear VAE would keep {m} dimension(s); this model keeps {k} and "
                f"reconstructs no better ({error:.3g}) than PCA with {k} component(s) "
                f"({linear_error:.3g})"
                + (
                    f"; γ ≈ the data's mean variance {mean_variance:.3g}: the decoder "
                    "outputs the data mean (Proposition 1's collapsed point)"
                    if k == 0 and abs(gamma / mean_variance - 1) < 0.1
                    else ""
                )
            )
    elif not normal and 0 < k < q:
        verdicts["i"] = "possible"
        reasons["i"] = f"{q - k} of {q} dimension(s) are off; without γ nothing tells why"
    if not reasons["i"]:
        reasons["i"] = "no dimension is off" if k == q else f"{k} of {q} dimension(s) active"
    if reference_error is not None and reference_error < 0.5 * diagnostics.reconstruction_error:
        verdicts["v"] = "indicated"
        reasons["v"] += ("; " if reasons["v"] else "") + (
            f"the reference reconstruction error {reference_error:.3g} is less than half this "
            f"model's {diagnostics.reconstruction_error:.3g}"
        )
    if not reasons["v"]:
        reasons["v"] = "nothing suggests a bad local minimum"

    if k == 0 and diagnostics.mutual_information < 0.01:
        verdicts["iv"] = "possible"
        reasons["iv"] = (
            f"no active unit and I(x; z) = {diagnostics.mutual_information:.2g} nats: the "
            "decoder ignores z; whether it could model x without z is a property of its "
            "architecture, which these diagnostics do not see"
        )
    else:
        reasons["iv"] = f"I(x; z) = {diagnostics.mutual_information:.3g} nats, {k} active"
    return CollapseReport(num_active=k, latent_dim=q, verdicts=verdicts, reasons=reasons)
