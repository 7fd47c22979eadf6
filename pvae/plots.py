"""Figures: each function returns a matplotlib Figure (no global state, no plt.show)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pvae.marginal import ImportanceEstimate
from pvae.validation import check_positive_int

__all__ = [
    "KHAT_GOOD",
    "KHAT_UNRELIABLE",
    "latent_grid_codes",
    "plot_collapse_depth",
    "plot_construction",
    "plot_demo",
    "plot_gamma_sweep",
    "plot_history",
    "plot_interpolation",
    "plot_khat",
    "plot_latent_grid",
    "plot_latent_scatter",
    "plot_log_marginal",
    "plot_proposition1",
    "plot_reconstructions",
    "plot_samples",
    "plot_scale_histograms",
]

#: PSIS k̂ below this: the importance-sampling estimate is reliable (Vehtari et al. 2024).
KHAT_GOOD = 0.5
#: PSIS k̂ above this: the estimate is unreliable, whatever the number of samples.
KHAT_UNRELIABLE = 0.7

#: Width and height of one image of an image grid, in inches.
_CELL = 0.8


def _to_numpy(value, name: str) -> np.ndarray:
    """``value`` (a tensor, an array or nested sequences of numbers) as a float64 array,
    detached and on the CPU."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a tensor or an array of real numbers, got {type(value).__name__}"
        ) from None


def _check_array(value, name: str, shape: str, ndim=(1,), *, finite: bool = True) -> np.ndarray:
    """``value`` as a non-empty float64 array with one of the ranks ``ndim``; ``shape`` names
    the expected shape in errors. With ``finite``, a NaN or inf entry is an error."""
    array = _to_numpy(value, name)
    if array.ndim not in ndim:
        raise ValueError(f"{name} must have shape {shape}, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if finite and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))
        index = ", ".join(str(int(i)) for i in bad[0])
        raise ValueError(
            f"{name} contains a non-finite value {array[tuple(bad[0])]} at index [{index}] "
            f"({len(bad)} non-finite entries in all)"
        )
    return array


def _check_images(images, name: str, image_shape, ndim=(2,)) -> np.ndarray:
    """Flat images ``(..., d)`` as an array ``(..., height, width)``, d = height × width."""
    if (
        not isinstance(image_shape, (tuple, list, torch.Size))
        or len(image_shape) != 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in image_shape)
        or min(image_shape) < 1
    ):
        raise ValueError(
            f"image_shape must be (height, width), two positive integers, got {image_shape!r}"
        )
    height, width = (int(s) for s in image_shape)
    shape = "(n, d)" if ndim == (2,) else "(steps, d) or (rows, steps, d)"
    array = _check_array(images, name, shape, ndim)
    if array.shape[-1] != height * width:
        raise ValueError(
            f"{name} has {array.shape[-1]} pixels per image (shape {array.shape}), but "
            f"image_shape {tuple(image_shape)} has {height * width}"
        )
    return array.reshape(*array.shape[:-1], height, width)


def _grey_range(*arrays: np.ndarray) -> tuple[float, float]:
    """[0, 1], widened to the data where they leave it: one grey scale for a whole figure."""
    return (
        min(0.0, *(float(array.min()) for array in arrays)),
        max(1.0, *(float(array.max()) for array in arrays)),
    )


def _image_axes(figure: Figure, num_rows: int, num_columns: int) -> np.ndarray:
    axes = figure.subplots(num_rows, num_columns, squeeze=False)
    figure.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.03, hspace=0.03)
    for axis in axes.flat:
        axis.set(xticks=[], yticks=[])
        axis.spines[:].set_visible(False)
    return axes


def _show(axis, image: np.ndarray, grey: tuple[float, float]) -> None:
    axis.imshow(image, cmap="gray", vmin=grey[0], vmax=grey[1], interpolation="nearest")


def _check_extent(extent) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(low, high)`` for both axes, or ``((low₁, high₁), (low₂, high₂))``."""
    message = (
        "extent must be (low, high) for both latent axes or ((low1, high1), (low2, high2)), "
        f"finite with low < high, got {extent!r}"
    )
    try:
        array = _to_numpy(extent, "extent")
    except TypeError:
        raise ValueError(message) from None
    if array.shape == (2,):
        array = np.stack([array, array])
    if array.shape != (2, 2) or not np.isfinite(array).all() or (array[:, 0] >= array[:, 1]).any():
        raise ValueError(message)
    return (float(array[0, 0]), float(array[0, 1])), (float(array[1, 0]), float(array[1, 1]))


def _check_rows(rows, name: str, keys: tuple[str, ...], source: str) -> list:
    """``rows`` as a non-empty list of dicts that each have ``keys``; ``source`` names the
    function whose output they should be."""
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"{name} must be a list of dicts ({source}), got {type(rows).__name__}")
    if not rows:
        raise ValueError(f"{name} is empty: nothing to plot")
    for i, row in enumerate(rows):
        missing = [key for key in keys if not isinstance(row, Mapping) or key not in row]
        if missing:
            raise ValueError(
                f"{name}[{i}] must be a dict with the keys {list(keys)} ({source}); it lacks "
                f"{missing}" + ("" if isinstance(row, Mapping) else f": got {row!r}")
            )
    return list(rows)


def _check_curve(pair, name: str) -> None:
    """``pair`` = (x values, energies) of equal, non-zero length."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (x values, energies), got {pair!r}")
    sizes = [len(_check_array(values, name, "(n,)", finite=False)) for values in pair]
    if sizes[0] != sizes[1]:
        raise ValueError(
            f"{name} must pair as many x values as energies, got {sizes[0]} and {sizes[1]}"
        )


def _check_grid_size(grid_size) -> int:
    if check_positive_int(grid_size, "grid_size") < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size!r}")
    return int(grid_size)


def plot_history(history, *, title: str | None = None) -> Figure:
    """Learning curves from :func:`pvae.fit`'s history, per epoch: the ELBO on the monitored
    training points and, when the history has it (``validation_data``), on the held-out data,
    beside −loss, the training objective with the KL weight β; and the smallest decoder
    variance on each (log scale), which falls towards 0 where the likelihood is unbounded.

    :param history: a :class:`pvae.training.History`, or any list of its records (dicts with
        ``epoch`` and ``loss``, and optionally ``elbo``, ``val_elbo``, ``min_variance`` and
        ``val_min_variance``), e.g. read back from a checkpoint.
    :param str title: the figure's suptitle (default: none).
    """
    if isinstance(history, Mapping) or not hasattr(history, "__len__"):
        raise TypeError(f"history must be a list of per-epoch dicts, got {type(history).__name__}")
    if not history:
        raise ValueError("history is empty: nothing to plot")
    for key in ("epoch", "loss"):
        if not isinstance(history[0], Mapping) or key not in history[0]:
            raise ValueError(
                f"history must be a list of per-epoch dicts with 'epoch' and 'loss' "
                f"(pvae.fit's History), got a first record {history[0]!r}"
            )
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    elbo_axes, variance_axes = figure.subplots(1, 2)
    for axis in (elbo_axes, variance_axes):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = [record["epoch"] for record in history]

    def column(key: str) -> np.ndarray:
        return np.array([record.get(key, math.nan) for record in history], dtype=float)

    for key, label in (("elbo", "training (monitored points)"), ("val_elbo", "held-out")):
        if key in history[0]:
            elbo_axes.plot(epochs, column(key), marker="o", ms=3, label=label)
    elbo_axes.plot(epochs, -column("loss"), ls="--", color="gray", label="−loss (KL weight β)")
    elbo_axes.set(xlabel="epoch", ylabel="ELBO (nats per point)", title="ELBO")
    elbo_axes.legend()
    shown = False
    for key, label in (("min_variance", "training"), ("val_min_variance", "held-out")):
        variances = column(key)
        if np.isfinite(variances).any():
            variance_axes.semilogy(epochs, variances, marker="o", ms=3, label=label)
            shown = True
    if shown:
        variance_axes.legend()
    else:
        variance_axes.set(xticks=[], yticks=[])
        variance_axes.text(
            0.5,
            0.5,
            "no decoder variance\n(not a Normal likelihood)",
            ha="center",
            va="center",
            color="gray",
            transform=variance_axes.transAxes,
        )
    variance_axes.set(xlabel="epoch", ylabel="σ²", title="smallest decoder variance")
    for axis in (elbo_axes, variance_axes):
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure


def _log_marginal_row(label, result) -> dict:
    if isinstance(result, ImportanceEstimate):
        summary, proposal = result.summary(), result.proposal
    elif isinstance(result, Mapping):
        summary, proposal = result, result.get("proposal", "guide")
    else:
        raise TypeError(
            f"results[{label!r}] must be an ImportanceEstimate or its summary dict, "
            f"got {type(result).__name__}"
        )
    missing = [key for key in ("log_marginal", "stderr") if key not in summary]
    if missing:
        raise ValueError(
            f"results[{label!r}] has no {' or '.join(map(repr, missing))}: a summary dict needs "
            f"'log_marginal', 'stderr' and optionally 'elbo', got keys {sorted(summary)}"
        )
    row = {"label": str(label), "proposal": proposal}
    for key in ("log_marginal", "stderr", "elbo"):
        value = summary.get(key)
        if key == "elbo" and value is None:
            row[key] = math.nan
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"results[{label!r}][{key!r}] must be a number, got {value!r}")
        value = float(value)
        if key == "stderr":  # nan for K = 1: no error bar
            if value < 0 or value == math.inf:
                raise ValueError(
                    f"results[{label!r}]['stderr'] must be finite and >= 0 (or nan), got {value!r}"
                )
        elif not math.isfinite(value):
            raise ValueError(f"results[{label!r}][{key!r}] must be finite, got {value!r}")
        row[key] = value
    return row


def plot_log_marginal(
    results: Mapping[str, ImportanceEstimate | Mapping], *, title: str | None = None
) -> Figure:
    """Importance-sampled log p̂(x), averaged over the data points, with error bars of ±2
    standard errors (none where the standard error is ``nan``, K = 1), and the mean ELBO
    beside it: one column per entry of ``results`` (models, splits, numbers of samples K). The
    ELBO is a lower bound, so its marker lies below the estimate; the dotted line between
    them, labelled with its length, is the gap log p̂(x) − ELBO, an estimate of a lower bound
    on the mean KL(q(z|x) ‖ p(z|x)) (log p̂ is itself below log p(x) in expectation).

    :param results: label → an :class:`~pvae.marginal.ImportanceEstimate` (from
        :func:`pvae.log_marginal`) or its :meth:`~pvae.marginal.ImportanceEstimate.summary`
        dict (keys ``log_marginal``, ``stderr`` and, optionally, ``elbo`` and ``proposal``).
        With the prior as proposal the mean log-weight is E_p(z)[log p(x|z)], not the ELBO
        (the gap is then KL(p(z) ‖ p(z|x))), and is drawn with a marker of its own.
    :param str title: the axes' title (default: a description).
    """
    if not isinstance(results, Mapping):
        raise TypeError(
            "results must be a dict label → ImportanceEstimate or summary dict, "
            f"got {type(results).__name__}"
        )
    if not results:
        raise ValueError("results is empty: nothing to plot")
    rows = [_log_marginal_row(label, result) for label, result in results.items()]
    x = np.arange(len(rows))
    means = np.array([row["log_marginal"] for row in rows])
    errors = 2 * np.nan_to_num(np.array([row["stderr"] for row in rows]), nan=0.0)
    elbos = np.array([row["elbo"] for row in rows])
    figure = Figure(figsize=(max(4.5, 1.2 * len(rows) + 2.5), 4.2), layout="constrained")
    axis = figure.subplots()
    axis.errorbar(x, means, yerr=errors, fmt="o", color="C0", capsize=5, label="log p̂(x) ± 2 s.e.")
    prior = np.array([row["proposal"] == "prior" for row in rows])
    for mine, marker, color, label in (
        (~prior & np.isfinite(elbos), "v", "C1", "ELBO"),
        (prior & np.isfinite(elbos), "x", "C2", "mean log-weight (prior proposal)"),
    ):
        if mine.any():
            axis.plot(x[mine], elbos[mine], ls="", marker=marker, ms=8, color=color, label=label)
    for position, mean, elbo in zip(x, means, elbos, strict=True):
        if math.isfinite(elbo):
            axis.plot([position, position], [elbo, mean], ls=":", color="gray", lw=1)
            axis.annotate(
                f"gap {mean - elbo:.3g}",
                xy=(position, (mean + elbo) / 2),
                xytext=(9, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                color="gray",
            )
    labels = [row["label"] for row in rows]
    rotate = len(rows) > 4 or max(len(label) for label in labels) > 14
    axis.set_xticks(x, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    axis.set_xlim(-0.6, len(rows) - 0.4)
    axis.set(
        ylabel="mean over data points (nats)",
        title=title or "Importance-sampled log p̂(x) and the ELBO",
    )
    axis.grid(axis="y", alpha=0.3)
    handles, names = axis.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: not names[i].startswith("log p̂"))
    axis.legend([handles[i] for i in order], [names[i] for i in order], fontsize="small")
    return figure


def _khat_series(khat, labels) -> list[tuple[str | None, np.ndarray]]:
    if isinstance(khat, Mapping):
        if labels is not None:
            raise ValueError(
                f"labels must be None when khat is a dict (its keys label the series), "
                f"got {labels!r}"
            )
        if not khat:
            raise ValueError("khat is empty: nothing to plot")
        return [
            (str(label), _check_array(values, f"khat[{label!r}]", "(n,)", finite=False))
            for label, values in khat.items()
        ]
    array = _check_array(khat, "khat", "(n,) or (series, n)", (1, 2), finite=False)
    rows = array[None] if array.ndim == 1 else array
    if labels is None:
        names = [None] if array.ndim == 1 else [f"series {i}" for i in range(len(rows))]
    else:
        names = [labels] if isinstance(labels, str) else [str(label) for label in labels]
        if len(names) != len(rows):
            raise ValueError(
                f"labels must name each of the {len(rows)} series of khat "
                f"(shape {array.shape}), got {labels!r}"
            )
    return list(zip(names, rows, strict=True))


def plot_khat(khat, *, labels=None, title: str | None = None) -> Figure:
    """The PSIS Pareto shape k̂ of every data point against its index (Vehtari et al. [1]), with
    the thresholds 0.5 (below: good) and 0.7 (above: the importance-sampling estimate of that
    point is unreliable). Each series' legend entry gives its share of points above 0.7 — as
    :meth:`~pvae.marginal.ImportanceEstimate.summary`'s ``khat_above_0.7``, an ``inf`` k̂ counts
    as above — and how many k̂ were not finite and are not drawn: ``inf`` where K was too small
    for the Pareto fit, ``nan`` where every weight was equal.

    :param khat: k̂ of each point, shape ``(n,)`` (e.g. :attr:`ImportanceEstimate.khat
        <pvae.marginal.ImportanceEstimate>`); several series as an array ``(series, n)``, or a
        dict label → ``(n,)`` (e.g. training and held-out points, or models; lengths may differ).
    :param labels: the series' names when ``khat`` is not a dict: a string for one series, a
        sequence of strings for ``(series, n)``.
    :param str title: the axes' title (default: a description).

    [1] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    """
    series = _khat_series(khat, labels)
    figure = Figure(figsize=(8, 4.6 + 0.2 * len(series)), layout="constrained")
    axis = figure.subplots()
    largest = max(len(values) for _, values in series)
    size = float(np.clip(3000 / largest, 4, 30))
    for number, (label, values) in enumerate(series):
        finite = np.isfinite(values)
        index = np.arange(len(values))
        share = float(np.mean(values > KHAT_UNRELIABLE))
        entry = f"{label}: " if label is not None else ""
        entry += f"{share:.0%} of {len(values)} above {KHAT_UNRELIABLE}"
        num_inf, num_nan = int(np.isinf(values).sum()), int(np.isnan(values).sum())
        if num_inf:
            entry += f"; {num_inf} inf (K too small) not shown"
        if num_nan:
            entry += f"; {num_nan} nan (equal weights) not shown"
        axis.scatter(
            index[finite],
            values[finite],
            s=size,
            alpha=0.7,
            linewidths=0,
            color=f"C{number % 10}",
            label=entry,
        )
    axis.axhline(KHAT_GOOD, color="tab:green", ls="--", lw=1, label=f"good < {KHAT_GOOD}")
    axis.axhline(
        KHAT_UNRELIABLE, color="tab:red", ls="--", lw=1, label=f"unreliable > {KHAT_UNRELIABLE}"
    )
    axis.set(
        xlabel="data point",
        ylabel="Pareto k̂",
        title=title or "PSIS diagnostic k̂ of each point's importance weights",
    )
    axis.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize="small")
    return figure


def plot_reconstructions(
    x, reconstructions, *, image_shape, num_images: int = 10, title: str | None = None
) -> Figure:
    """The first ``num_images`` data points (top row) above their reconstructions (bottom
    row), as grey images on one grey scale: [0, 1], widened where the values leave it.

    :param x: data, shape ``(n, d)`` with d = height × width.
    :param reconstructions: their reconstructions (e.g. the decoder's mean at the encoder's
        mean), shape ``(n, d)``.
    :param image_shape: ``(height, width)``.
    :param int num_images: columns (default 10; at most n).
    :param str title: the figure's suptitle (default: none).
    """
    originals = _check_images(x, "x", image_shape)
    rebuilt = _check_images(reconstructions, "reconstructions", image_shape)
    if len(rebuilt) != len(originals):
        raise ValueError(
            f"reconstructions must have one image per image of x ({len(originals)}), "
            f"got {len(rebuilt)}"
        )
    num_images = min(check_positive_int(num_images, "num_images"), len(originals))
    originals, rebuilt = originals[:num_images], rebuilt[:num_images]
    figure = Figure(
        figsize=(_CELL * num_images + 1.0, 2 * _CELL + (0.3 if title else 0.1)),
        layout="constrained",
    )
    axes = _image_axes(figure, 2, num_images)
    grey = _grey_range(originals, rebuilt)
    for column in range(num_images):
        _show(axes[0, column], originals[column], grey)
        _show(axes[1, column], rebuilt[column], grey)
    for axis, label in zip(axes[:, 0], ("data", "reconstruction"), strict=True):
        axis.set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title)
    return figure


def plot_samples(images, *, image_shape, num_columns: int = 10, title: str | None = None) -> Figure:
    """A grid of grey images, row by row, on one grey scale ([0, 1], widened where the values
    leave it): e.g. the decoder's means at draws from the prior.

    :param images: shape ``(n, d)`` with d = height × width.
    :param image_shape: ``(height, width)``.
    :param int num_columns: images per row (default 10); ⌈n / num_columns⌉ rows.
    :param str title: the figure's suptitle (default: none).
    """
    tiles = _check_images(images, "images", image_shape)
    num_columns = min(check_positive_int(num_columns, "num_columns"), len(tiles))
    num_rows = math.ceil(len(tiles) / num_columns)
    figure = Figure(
        figsize=(_CELL * num_columns + 0.2, _CELL * num_rows + (0.3 if title else 0.1)),
        layout="constrained",
    )
    axes = _image_axes(figure, num_rows, num_columns)
    grey = _grey_range(tiles)
    for index, axis in enumerate(axes.flat):
        if index < len(tiles):
            _show(axis, tiles[index], grey)
        else:
            axis.set_axis_off()
    if title:
        figure.suptitle(title)
    return figure


def plot_interpolation(images, *, image_shape, title: str | None = None) -> Figure:
    """Images decoded along a line in latent space, from the first code (left) to the second
    (right); several lines one per row. One grey scale ([0, 1], widened where the values leave
    it) for the whole figure.

    :param images: shape ``(steps, d)`` for one line or ``(rows, steps, d)`` for several, with
        d = height × width.
    :param image_shape: ``(height, width)``.
    :param str title: the figure's suptitle (default: none).
    """
    tiles = _check_images(images, "images", image_shape, ndim=(2, 3))
    if tiles.ndim == 3:
        tiles = tiles[None]
    num_rows, steps = tiles.shape[:2]
    figure = Figure(
        figsize=(_CELL * steps + 0.2, _CELL * num_rows + (0.6 if title else 0.3)),
        layout="constrained",
    )
    axes = _image_axes(figure, num_rows, steps)
    grey = _grey_range(tiles)
    for row in range(num_rows):
        for step in range(steps):
            _show(axes[row, step], tiles[row, step], grey)
    axes[-1, 0].set_xlabel("start", fontsize="small")
    axes[-1, -1].set_xlabel("end", fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def latent_grid_codes(grid_size: int, extent) -> torch.Tensor:
    """The latent codes of :func:`plot_latent_grid`'s grid, in its order: ``grid_size`` evenly
    spaced values per axis, from low to high, row-major with z₂ decreasing down the rows and
    z₁ increasing along each row.

    :param int grid_size: points per axis (at least 2).
    :param extent: ``(low, high)`` for both axes, or ``((low₁, high₁), (low₂, high₂))``.
    :returns: shape ``(grid_size ** 2, 2)``, torch's default dtype; decode them with the
        model (e.g. its likelihood's mean) for :func:`plot_latent_grid`.
    """
    grid_size = _check_grid_size(grid_size)
    (low1, high1), (low2, high2) = _check_extent(extent)
    z2, z1 = torch.meshgrid(
        torch.linspace(high2, low2, grid_size),
        torch.linspace(low1, high1, grid_size),
        indexing="ij",
    )
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)


def plot_latent_grid(
    images, *, image_shape, grid_size: int, extent, title: str | None = None
) -> Figure:
    """The learned manifold of a 2-D latent space (Kingma & Welling [1], Fig. 4): the images
    decoded at the codes of :func:`latent_grid_codes`, each drawn at its code, on axes in
    latent coordinates z₁, z₂, on one grey scale ([0, 1], widened where the values leave it).

    :param images: shape ``(grid_size ** 2, d)`` with d = height × width, in the order of
        :func:`latent_grid_codes`: row-major, z₂ decreasing down the rows.
    :param image_shape: ``(height, width)``.
    :param int grid_size: points per axis (at least 2).
    :param extent: ``(low, high)`` for both axes, or ``((low₁, high₁), (low₂, high₂))``: the
        codes of the first and last images.
    :param str title: the axes' title (default: a description).

    [1] Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
    """
    grid_size = _check_grid_size(grid_size)
    (low1, high1), (low2, high2) = _check_extent(extent)
    tiles = _check_images(images, "images", image_shape)
    if len(tiles) != grid_size**2:
        raise ValueError(
            f"images must have grid_size ** 2 = {grid_size**2} rows, one per grid point, "
            f"got {len(tiles)}"
        )
    height, width = tiles.shape[1:]
    mosaic = (
        tiles.reshape(grid_size, grid_size, height, width)
        .transpose(0, 2, 1, 3)
        .reshape(grid_size * height, grid_size * width)
    )
    # Each image is centred on its code: the grid spans half a step beyond low and high.
    step1, step2 = (high1 - low1) / (grid_size - 1), (high2 - low2) / (grid_size - 1)
    side = float(np.clip(0.45 * grid_size + 1.5, 4.5, 9))
    figure = Figure(figsize=(side + 0.5, side), layout="constrained")
    axis = figure.subplots()
    grey = _grey_range(mosaic)
    axis.imshow(
        mosaic,
        cmap="gray",
        vmin=grey[0],
        vmax=grey[1],
        extent=(low1 - step1 / 2, high1 + step1 / 2, low2 - step2 / 2, high2 + step2 / 2),
        aspect=(step1 * height) / (step2 * width),  # square pixels
    )
    # Thin borders between the tiles, so that neighbouring images do not run together.
    borders = {"color": "0.5", "lw": 0.8}
    for k in range(1, grid_size):
        axis.axvline(low1 - step1 / 2 + k * step1, **borders)
        axis.axhline(low2 - step2 / 2 + k * step2, **borders)
    axis.set(xlabel="z₁", ylabel="z₂", title=title or "Decoded images over the latent space")
    return figure


def _check_labels(labels, num_points: int) -> np.ndarray:
    array = _check_array(labels, "labels", f"({num_points},)")
    if array.shape != (num_points,):
        raise ValueError(
            f"labels must have one entry per code, shape ({num_points},), got {array.shape}"
        )
    if not np.array_equal(array, np.round(array)):
        bad = int(np.argmax(array != np.round(array)))
        raise ValueError(f"labels must be integer class labels, got labels[{bad}] = {array[bad]}")
    return array.astype(np.int64)


def plot_latent_scatter(codes, labels=None, *, title: str | None = None) -> Figure:
    """Latent codes of a 2-D latent space (e.g. the encoder's means), one dot per point,
    coloured by class: up to 10 classes in tab10's colours with a legend, more on a colour bar.

    :param codes: shape ``(n, 2)``. For a wider latent space pass two of its columns, e.g. the
        two most active dimensions of :func:`pvae.diagnostics.diagnose`.
    :param labels: integer class of each point, shape ``(n,)``, or ``None`` (one colour).
    :param str title: the axes' title (default: a description).
    """
    points = _check_array(codes, "codes", "(n, 2)", (2,))
    if points.shape[1] != 2:
        raise ValueError(
            f"codes must have shape (n, 2): two latent dimensions, got shape {points.shape}; "
            f"with latent_dim {points.shape[1]}, pass two columns, e.g. codes[:, [0, 1]]"
        )
    figure = Figure(figsize=(6.2, 5), layout="constrained")
    axis = figure.subplots()
    style = {"s": float(np.clip(4000 / len(points), 3, 30)), "alpha": 0.7, "linewidths": 0}
    if labels is None:
        axis.scatter(points[:, 0], points[:, 1], **style)
    else:
        classes = _check_labels(labels, len(points))
        values = np.unique(classes)
        if len(values) <= 10:
            palette = matplotlib.colormaps["tab10"]
            colors = palette(np.searchsorted(values, classes))
            axis.scatter(points[:, 0], points[:, 1], c=colors, **style)
            handles = [
                Line2D([], [], ls="", marker="o", color=palette(i), label=str(value))
                for i, value in enumerate(values)
            ]
            axis.legend(handles=handles, title="class", loc="upper left", bbox_to_anchor=(1.01, 1))
        else:
            scatter = axis.scatter(points[:, 0], points[:, 1], c=classes, cmap="viridis", **style)
            figure.colorbar(scatter, ax=axis, label="class")
    axis.set_aspect("equal", adjustable="datalim")
    axis.set(xlabel="z₁", ylabel="z₂", title=title or "Latent codes")
    axis.grid(alpha=0.3)
    return figure


def plot_scale_histograms(scales: Mapping[str, torch.Tensor], *, bins: int = 40) -> Figure:
    """Histograms of the encoder's σ_z over every point and latent dimension, one panel per
    entry of ``scales`` (e.g. per depth; Dai et al.'s Fig. 2). σ_z near 1 is a dimension at
    the prior (collapsed); near 0 a dimension the decoder uses.

    :param scales: label → σ_z, any shape (e.g. ``(n, latent_dim)`` from
        :func:`pvae.diagnostics.diagnose`), all entries finite and ≥ 0.
    :param int bins: bins per histogram over [0, max(1.05, largest σ_z)] (default 40).
    """
    if not isinstance(scales, Mapping):
        raise TypeError(f"scales must be a dict label → σ_z, got {type(scales).__name__}")
    if not scales:
        raise ValueError("scales is empty: nothing to plot")
    check_positive_int(bins, "bins")
    arrays = {}
    for label, values in scales.items():
        values = _to_numpy(values, f"scales[{label!r}]").reshape(-1)
        arrays[label] = _check_array(values, f"scales[{label!r}]", "(any shape)")
        if arrays[label].min() < 0:
            raise ValueError(f"scales[{label!r}] must be ≥ 0, got {arrays[label].min()}")
    figure = Figure(figsize=(2.6 * len(scales), 2.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(scales), sharey=True))
    for axis, (label, values) in zip(axes, arrays.items(), strict=True):
        axis.hist(values, bins=bins, range=(0, max(1.05, float(values.max()))), density=True)
        axis.axvline(1.0, color="black", lw=0.8, ls=":")
        axis.set(title=label, xlabel="encoder σ_z")
    axes[0].set_ylabel("density")
    return figure


def plot_gamma_sweep(
    sweeps: dict[str, list[dict]], *, eigenvalues=None, latent_dim: int | None = None
) -> Figure:
    """Active units against the fixed decoder variance γ (Dai et al.'s Proposition 2): one line
    per sweep of :func:`pvae.collapse.gamma_sweep` (e.g. ``{"linear VAE": rows, "MLP VAE":
    rows}``) and, given the data-covariance ``eigenvalues`` and ``latent_dim``, the closed-form
    pPCA count min(#{λ > γ}, q) as an exact step function, with the eigenvalues as ticks along
    the top (a dimension switches off where γ passes one)."""
    if not isinstance(sweeps, Mapping) or not sweeps or not all(sweeps.values()):
        raise ValueError("sweeps must map labels to non-empty lists of rows")
    for label, rows in sweeps.items():
        _check_rows(rows, f"sweeps[{label!r}]", ("gamma", "active"), "pvae.collapse.gamma_sweep")
        for i, row in enumerate(rows):
            if not (isinstance(row["gamma"], Real) and row["gamma"] > 0):
                raise ValueError(
                    f"sweeps[{label!r}][{i}]['gamma'] must be a number > 0 (a log axis), got "
                    f"{row['gamma']!r}"
                )
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axes = figure.subplots()
    gammas = [row["gamma"] for rows in sweeps.values() for row in rows]
    low, high = min(gammas) / 1.5, max(gammas) * 1.5
    top = max(row["active"] for rows in sweeps.values() for row in rows)
    if eigenvalues is not None and latent_dim is not None:
        values = np.sort(torch.as_tensor(eigenvalues).detach().cpu().numpy())
        grid = np.geomspace(low, high, 2000)
        counts = np.minimum((values[None, :] > grid[:, None]).sum(1), latent_dim)
        axes.plot(
            grid,
            counts,
            color="black",
            lw=2,
            alpha=0.4,
            label="closed form (pPCA): min(#{λ > γ}, q)",
        )
        top = max(top, latent_dim)
        inside = values[(values >= low) & (values <= high)]
        axes.plot(
            inside,
            np.full_like(inside, top + 1.0),
            "|",
            color="grey",
            markersize=12,
            label="eigenvalues of the data covariance",
        )
    for (label, rows), marker in zip(sweeps.items(), "osd^v", strict=False):
        axes.plot(
            [r["gamma"] for r in rows],
            [r["active"] for r in rows],
            marker=marker,
            ls="--",
            label=label,
        )
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set(
        xlabel="fixed decoder variance γ",
        ylabel="active units (activity > 0.01)",
        title="Latent dimensions switch off as γ passes the eigenvalues",
    )
    axes.legend(fontsize=8)
    return figure


def plot_proposition1(slices: dict[str, tuple], family: tuple, *, collapsed: float) -> Figure:
    """Proposition 1 in two panels: the exact energy −ELBO(X) along a line through the collapsed
    point, ``slices[label] = (steps, energies)`` (e.g. α = 0.5 and α = 0 along the affine
    model's descent direction), and the energy of the reconstructing family against δ,
    ``family = (deltas, energies)``, with the collapsed energy ``collapsed`` marked."""
    if not isinstance(slices, Mapping) or not slices:
        raise ValueError(
            f"slices must be a non-empty dict label → (steps, energies), got {slices!r}"
        )
    for label, pair in slices.items():
        _check_curve(pair, f"slices[{label!r}]")
    _check_curve(family, "family")
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    slice_axes, family_axes = figure.subplots(1, 2)
    for label, (steps, energies) in slices.items():
        slice_axes.plot(steps, energies, label=label)
    slice_axes.axhline(collapsed, color="black", lw=0.8, ls=":", label="collapsed point (7)")
    slice_axes.set(
        xlabel="step t along a direction v",
        ylabel="energy −ELBO(X) (nats)",
        title="Around the collapsed point",
    )
    slice_axes.legend(fontsize=8)
    deltas, energies = family
    family_axes.semilogx(deltas, energies, marker="o", label="reconstructing family")
    family_axes.axhline(collapsed, color="black", lw=0.8, ls=":", label="collapsed point (7)")
    family_axes.invert_xaxis()
    family_axes.set(
        xlabel="δ (encoder and decoder scale)",
        ylabel="energy −ELBO(X) (nats)",
        title="Energy → −∞ as δ → 0 (α > 0 too)",
    )
    family_axes.legend(fontsize=8)
    if not all(math.isfinite(e) for e in energies):
        raise ValueError("family energies must be finite")
    return figure


def plot_demo(runs: Mapping[tuple[str, str], dict]) -> Figure:
    """The demo's figure (:func:`pvae.demo.run_demo`): log p̂ of the tracked training points
    and of the held-out points per epoch, one line per variant, and the smallest decoder
    variance (only variants where it is finite, i.e. Normal likelihoods); one row of three
    panels per data version.

    :param runs: ``(version, variant label)`` → a run with a ``"history"``, a list of per-epoch
        records with the keys ``epoch``, ``train_log_px``, ``test_log_px`` and
        ``min_variance``. Versions and variants are drawn in the order they first appear.
    """
    if not isinstance(runs, Mapping):
        raise TypeError(
            f"runs must be a dict (version, label) → run (pvae.demo.run_demo), got "
            f"{type(runs).__name__}"
        )
    if not runs:
        raise ValueError("runs is empty: nothing to plot")
    for key, run in runs.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"runs must be keyed by (version, variant label), got key {key!r}")
        if not isinstance(run, Mapping) or "history" not in run:
            raise ValueError(f"runs[{key!r}] must be a dict with a 'history', got {run!r}")
        _check_rows(
            run["history"],
            f"runs[{key!r}]['history']",
            ("epoch", "train_log_px", "test_log_px", "min_variance"),
            "pvae.demo.run_demo",
        )
    versions = list(dict.fromkeys(version for version, _ in runs))
    figure = Figure(figsize=(14, 4.2 * len(versions)), layout="constrained")
    axes = figure.subplots(len(versions), 3, squeeze=False)
    for row, version in enumerate(versions):
        for label in dict.fromkeys(label for mine, label in runs if mine == version):
            history = runs[version, label]["history"]
            epochs = [record["epoch"] for record in history]
            style = {"marker": ".", "label": label}
            axes[row, 0].plot(epochs, [r["train_log_px"] for r in history], **style)
            axes[row, 1].plot(epochs, [r["test_log_px"] for r in history], **style)
            variances = [r["min_variance"] for r in history]
            if all(math.isfinite(v) for v in variances):
                axes[row, 2].semilogy(epochs, variances, **style)
        axes[row, 0].set(title=f"{version} data: training points", ylabel="log p̂(x) (nats)")
        axes[row, 1].set(title=f"{version} data: held-out points", ylabel="log p̂(x) (nats)")
        axes[row, 2].set(title="smallest decoder variance", ylabel="σ²")
        for axis in axes[row]:
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
        axes[row, 1].sharey(axes[row, 0])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    figure.suptitle("Is the Gaussian VAE well-posed? Importance-sampled log p(x) during training")
    return figure


def plot_construction(rows: list[dict]) -> Figure:
    """log p̂(X) against the sharpness k of the Mattei–Frellsen sequence, without and with the
    variance floor ξ, and the floored sequence's bound.

    :param rows: the rows of :func:`pvae.demo.construction_table`: keys ``k``,
        ``free_log_px``, ``floored_log_px`` and ``bound``.
    """
    rows = _check_rows(
        rows,
        "rows",
        ("k", "free_log_px", "floored_log_px", "bound"),
        "pvae.demo.construction_table",
    )
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    k = [row["k"] for row in rows]
    axis.plot(k, [row["free_log_px"] for row in rows], "o-", label="per-pixel σ², no floor")
    axis.plot(k, [row["floored_log_px"] for row in rows], "s-", label="floor ξ")
    axis.axhline(rows[0]["bound"], color="gray", ls="--", label="bound −(nd/2) log 2πξ")
    axis.set(
        xlabel="sharpness k = −log σ² on the collapsed point",
        ylabel="log p̂(X) of the tracked training points (nats)",
        title="Mattei–Frellsen: the likelihood has no maximum",
    )
    axis.legend()
    axis.grid(alpha=0.3)
    return figure


def plot_collapse_depth(
    rows: list[dict],
    scales: Mapping[tuple[str, int], np.ndarray],
    *,
    baseline: float | None = None,
    title: str | None = None,
) -> Figure:
    """Dai et al.'s Fig. 1 and 2 [1] for the rows of
    :func:`pvae.collapse_depth.run_collapse_depth`.

    Top: training (solid) and held-out (dotted) reconstruction error against depth for every
    variant, log scale; the learned γ; the VAEs' active units. Bottom: one histogram per depth
    of the VAEs' encoder scales σ_z over every point and latent dimension (counts, log scale):
    a dimension at the prior has σ_z ≈ 1.

    :param rows: the rows :func:`~pvae.collapse_depth.run_collapse_depth` returns (or reads
        back from its JSON); variants are drawn in the order they first appear.
    :param scales: ``(variant, depth)`` → array of σ_z (any shape), for the VAE variants.
    :param float baseline: the error of reconstructing every point by the training mean, drawn
        as a line in the first panel (a decoder that ignores z does no better), or ``None``.
    :param str title: the figure's suptitle (default: none).

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """
    rows = _check_rows(
        rows,
        "rows",
        ("variant", "depth", "train_recon_error", "test_recon_error", "gamma", "active_units"),
        "pvae.collapse_depth.run_collapse_depth",
    )
    if not isinstance(scales, Mapping):
        raise TypeError(
            f"scales must be a dict (variant, depth) → σ_z, got {type(scales).__name__}"
        )
    depths = sorted({row["depth"] for row in rows})
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    colors = {"ae": "C0", "vae": "C3", "vae-warmup": "C2"}
    figure = Figure(figsize=(max(12, 2.2 * len(depths)), 8), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.15, 1))
    error_axis, gamma_axis, active_axis = top.subplots(1, 3)
    for variant in variants:
        mine = sorted((row for row in rows if row["variant"] == variant), key=lambda r: r["depth"])
        x = [row["depth"] for row in mine]
        style = {"color": colors.get(variant), "marker": "o"}
        error_axis.plot(x, [row["train_recon_error"] for row in mine], label=variant, **style)
        error_axis.plot(x, [row["test_recon_error"] for row in mine], ls=":", alpha=0.6, **style)
        gamma_axis.plot(x, [row["gamma"] for row in mine], label=variant, **style)
        if variant != "ae":
            active_axis.plot(x, [row["active_units"] for row in mine], label=variant, **style)
    if baseline is not None:
        error_axis.axhline(baseline, color="gray", ls="--", lw=1, label="data mean")
    error_axis.set(
        yscale="log",
        xlabel="hidden layers (encoder and decoder each)",
        ylabel="‖x − μ_x(E_q[z|x])‖² per point",
        title="reconstruction error: training (—), held-out (···)",
    )
    gamma_axis.set(yscale="log", xlabel="hidden layers", ylabel="γ", title="learned shared γ")
    active_axis.set(
        xlabel="hidden layers",
        ylabel="active units",
        title="VAE active units (Burda et al.)",
        ylim=(0, None),
    )
    for axis in (error_axis, gamma_axis, active_axis):
        axis.set_xticks(depths)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()

    histogram_axes = bottom.subplots(1, len(depths), sharex=True, sharey=True, squeeze=False)[0]
    values = [np.asarray(value).ravel() for value in scales.values()]
    upper = max([1.2, *(float(value.max()) for value in values if value.size)])
    bins = np.linspace(0, upper, 49)
    for axis, depth in zip(histogram_axes, depths, strict=True):
        for variant in variants:
            if (variant, depth) in scales:
                axis.hist(
                    np.asarray(scales[variant, depth]).ravel(),
                    bins=bins,
                    histtype="step",
                    lw=1.5,
                    color=colors.get(variant),
                    label=variant,
                )
        axis.axvline(1.0, color="gray", ls="--", lw=0.8)
        axis.set(yscale="log", title=f"{depth} hidden layer{'s' * (depth > 1)}", xlabel="σ_z")
    histogram_axes[0].set_ylabel("count (points × dims)")
    if histogram_axes[0].get_legend_handles_labels()[0]:
        histogram_axes[0].legend(fontsize="small")
    bottom.suptitle("VAE encoder scales σ_z of every training point and latent dimension")
    if title:
        figure.suptitle(title)
    return figure
