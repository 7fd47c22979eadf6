"""Imputed images: the truth, what was observed, and each method's single imputation."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pvae.validation import check_positive_int

__all__ = ["plot_imputations"]

#: Width and height of one image, in inches.
_CELL = 0.75

#: The colour of a missing entry in the "observed" column (RGB).
_MISSING = (0.85, 0.25, 0.2)


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(image, 0.0, 1.0)[..., None], 3, axis=-1)


def plot_imputations(panels: dict, *, image_shape, labels: dict, num_images: int = 2) -> Figure:
    """Rows of images for each likelihood and mask pattern of ``panels`` (the first
    ``num_images`` points of each): the truth, the observed entries (missing ones in red),
    then every method's single imputation, one column each, as grey images on [0, 1].

    :param dict panels: likelihood name → ``{"truth": (n, d), "masks": {pattern: (n, d)
        bool}, "images": {(pattern, method): (n, d)}}`` (what
        :func:`pvae.experiments.missing_data.run_missing_data` gathers).
    :param image_shape: (height, width) of one image.
    :param dict labels: method → its column title.
    :param int num_images: points shown per pattern (default 2).
    """
    check_positive_int(num_images, "num_images")
    if not panels:
        raise ValueError("panels must hold at least one likelihood")
    height, width = image_shape
    rows = []
    for name, panel in panels.items():
        for pattern, mask in panel["masks"].items():
            methods = [m for (p, m) in panel["images"] if p == pattern]
            for i in range(min(num_images, panel["truth"].shape[0])):
                truth = panel["truth"][i].detach().cpu().numpy().reshape(height, width)
                shown = mask[i].cpu().numpy().reshape(height, width)
                observed = _grey(truth)
                observed[~shown] = _MISSING
                cells = [_grey(truth), observed]
                for method in methods:
                    image = panel["images"][(pattern, method)][i]
                    cells.append(_grey(image.detach().cpu().numpy().reshape(height, width)))
                rows.append(
                    (
                        f"{name}\n{pattern} half missing"
                        if pattern != "random"
                        else f"{name}\nmissing at random",
                        cells,
                        methods,
                    )
                )
    columns = max(len(cells) for _, cells, _ in rows)
    figure = Figure(figsize=(1.4 + _CELL * columns, 0.35 + _CELL * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (label, cells, methods) in enumerate(rows):
        titles = ["truth", "observed", *(labels.get(m, m) for m in methods)]
        for c, axis in enumerate(axes[r]):
            axis.set(xticks=[], yticks=[])
            axis.spines[:].set_visible(False)
            if c < len(cells):
                axis.imshow(cells[c], interpolation="nearest")
            if r == 0 and c < len(titles):
                axis.set_title(titles[c].replace(" ", "\n"), fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    return figure
