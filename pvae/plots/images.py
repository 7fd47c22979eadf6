"""Images: reconstructions, samples, interpolations and the latent space."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pvae.plots.inputs import (
    check_array,
    check_extent,
    check_grid_size,
    check_images,
    check_label_array,
)
from pvae.validation import check_positive_int

__all__ = [
    "latent_grid_codes",
    "plot_interpolation",
    "plot_latent_grid",
    "plot_latent_scatter",
    "plot_reconstructions",
    "plot_samples",
]

#: Width and height of one image of an image grid, in inches.
_CELL = 0.8


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
    originals = check_images(x, "x", image_shape)
    rebuilt = check_images(reconstructions, "reconstructions", image_shape)
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
    tiles = check_images(images, "images", image_shape)
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
    tiles = check_images(images, "images", image_shape, ndim=(2, 3))
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
    grid_size = check_grid_size(grid_size)
    (low1, high1), (low2, high2) = check_extent(extent)
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
    grid_size = check_grid_size(grid_size)
    (low1, high1), (low2, high2) = check_extent(extent)
    tiles = check_images(images, "images", image_shape)
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


def plot_latent_scatter(codes, labels=None, *, title: str | None = None) -> Figure:
    """Latent codes of a 2-D latent space (e.g. the encoder's means), one dot per point,
    coloured by class: up to 10 classes in tab10's colours with a legend, more on a colour bar.

    :param codes: shape ``(n, 2)``. For a wider latent space pass two of its columns, e.g. the
        two most active dimensions of :func:`pvae.diagnostics.diagnose`.
    :param labels: integer class of each point, shape ``(n,)``, or ``None`` (one colour).
    :param str title: the axes' title (default: a description).
    """
    points = check_array(codes, "codes", "(n, 2)", (2,))
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
        classes = check_label_array(labels, len(points))
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
