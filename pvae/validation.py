"""Up-front argument checks whose errors name the argument and the offending value."""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = [
    "KEY_LIMIT",
    "SEED_LIMIT",
    "SIZE_LIMIT",
    "check_binary",
    "check_bool",
    "check_choice",
    "check_data",
    "check_dtypes",
    "check_finite_float",
    "check_float_dtype",
    "check_labels",
    "check_model_data",
    "check_nonnegative_float",
    "check_nonnegative_int",
    "check_num_levels",
    "check_pair",
    "check_pair_data",
    "check_positive_float",
    "check_positive_int",
    "check_representable",
    "check_seed",
    "check_site",
    "check_sizes",
    "check_unit_interval",
    "largest_entry",
]

#: Seeds are integers in ``[0, SEED_LIMIT)``: what :func:`pyro.set_rng_seed` (NumPy's
#: generator) accepts, and so what every pvae seed accepts.
SEED_LIMIT = 2**32

#: The estimators' keys of common random numbers (``seed`` of :func:`pvae.log_marginal`) are
#: only hashed: any integer below this, the range of the key drawn when none is given.
KEY_LIMIT = 2**62

#: The largest count pvae accepts (a number of samples, steps, particles, epochs): the largest
#: tensor size torch holds.
SIZE_LIMIT = 2**63 - 1


def check_data(
    x, name: str = "data", *, dim: int | None = None, event_shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Check that ``x`` is a non-empty, finite, floating-point ``(num_points, *event_shape)``
    tensor: flat vectors ``(n, d)`` or images ``(n, channels, height, width)``, whatever the
    model's observed site scores with ``.to_event(len(event_shape))``.

    :param x: the tensor to check.
    :param str name: the argument name used in error messages.
    :param int dim: the expected event size (the product of ``event_shape``), if known.
    :param tuple event_shape: the expected shape of one point, if known (e.g. the training
        data's, for held-out data).
    :returns: ``x`` itself (never a converted copy: nothing is silently coerced).
    :raises TypeError: if ``x`` is not a floating-point :class:`torch.Tensor`.
    :raises ValueError: on a rank below 2, a wrong event size, no rows, or a NaN/inf entry (the
        first one's index is named).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it explicitly, e.g. {name}.to(torch.get_default_dtype())"
        )
    if x.dim() < 2:
        raise ValueError(
            f"{name} must have shape (num_points, *event_shape), e.g. (num_points, data_dim) "
            f"or (num_points, 1, height, width), got shape {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if dim is not None and x[0].numel() != dim:
        raise ValueError(
            f"{name} must have {dim} entries per point (data_dim), got shape {tuple(x.shape)}"
        )
    if event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"{name} must have points of shape {tuple(event_shape)}, got shape {tuple(x.shape)}"
        )
    if x.device.type == "meta":  # shapes only (a checkpoint's size check): no values to read
        return x
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        index = [int(i) for i in (~finite).nonzero()[0]]
        raise ValueError(
            f"{name} contains a non-finite value {x[tuple(index)].item()} at index {index} "
            f"({int((~finite).sum())} non-finite entries in all)"
        )
    _check_magnitude(x, name)
    return x


def largest_entry(x: torch.Tensor, dtype: torch.dtype | None = None) -> float:
    """The largest magnitude of an entry of points like ``x`` whose squared norm is finite in
    ``dtype`` (default ``x``'s): √(max / d) for ``d`` entries per point
    (6.6e17 for 784 entries in float32, 1.3e153 in float64)."""
    info = torch.finfo(dtype or x.dtype)
    return math.sqrt(info.max / max(x[0].numel(), 1))


def _check_magnitude(x: torch.Tensor, name: str) -> None:
    """Refuse entries so large that a point's squared norm, which every Gaussian log-density
    and squared error computes, overflows ``x``'s dtype."""
    limit = largest_entry(x)
    top, bottom = float(x.detach().max()), float(x.detach().min())  # no copy of x
    if max(top, -bottom) <= limit:
        return
    index = tuple(int(i) for i in (x.abs() > limit).nonzero()[0])
    wider = " (in float64 up to about 1e153)" if x.dtype != torch.float64 else ""
    raise ValueError(
        f"{name}[{', '.join(map(str, index))}] = {x[index].item():g} is too large for "
        f"{x.dtype}: a point of {x[0].numel()} entries this large has a squared norm above "
        f"{torch.finfo(x.dtype).max:.3g}, the dtype's largest number, so Gaussian "
        f"log-densities and squared errors overflow; entries up to {limit:.3g} in magnitude "
        f"work{wider}. Rescale the data, or convert data and pair explicitly to float64"
    )


def check_binary(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that every entry of ``x`` is exactly 0 or 1 (for Bernoulli likelihoods)."""
    return _refuse_entries(
        x,
        (x != 0) & (x != 1),
        name,
        "must be binary (every entry 0 or 1) for a Bernoulli likelihood",
        "binarize the data (pvae.data.load_digits(binarize=True)) or use a Normal likelihood",
    )


def check_unit_interval(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that every entry of ``x`` lies in [0, 1] (for continuous Bernoulli likelihoods)."""
    return _refuse_entries(
        x,
        ~((x >= 0) & (x <= 1)),  # NaN fails both comparisons
        name,
        "must lie in [0, 1] for a continuous Bernoulli likelihood",
        "scale grey levels to [0, 1] (pvae.data.from_levels) or use a Normal likelihood",
    )


def _refuse_entries(
    x: torch.Tensor, bad: torch.Tensor, name: str, requirement: str, remedy: str
) -> torch.Tensor:
    """Raise if any entry of ``bad`` is set, naming the first such index of ``x`` and its value."""
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} {requirement}, but {name}[{', '.join(map(str, index))}] = "
            f"{x[index].item():g}; {remedy}"
        )
    return x


def check_num_levels(value, name: str = "num_levels") -> int:
    """Check that ``value`` is an integer number of grey levels, at least 2 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    """Check that ``value`` is one of ``choices`` (an unhashable value is simply not one)."""
    try:
        known = value in choices
    except TypeError:  # e.g. a list looked up in a dict
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_bool(value, name: str, *, allow_none: bool = False) -> bool | None:
    """Check that ``value`` is ``True`` or ``False`` (or ``None`` where allowed): no truthy
    stand-ins such as 0, 1 or "yes"."""
    if isinstance(value, bool) or (allow_none and value is None):
        return value
    allowed = "True, False or None" if allow_none else "True or False"
    raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_positive_int(value, name: str) -> int:
    """Check that ``value`` is an integer in ``[1, SIZE_LIMIT]`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return _check_size_limit(value, name)


def _check_size_limit(value, name: str) -> int:
    """Counts become tensor sizes, which torch holds in an int64: past it the error would be
    an OverflowError deep inside torch."""
    if value > SIZE_LIMIT:
        raise ValueError(
            f"{name} must be at most 2**63 - 1 = {SIZE_LIMIT} (torch's largest size), got {value!r}"
        )
    return int(value)


def check_nonnegative_int(value, name: str, meaning: str = "") -> int:
    """Check that ``value`` is an integer ≥ 0 (bools refused); ``meaning`` says what 0 means
    in the error (e.g. ``" (0: no AIS)"``)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer{meaning}, got {value!r}")
    return _check_size_limit(value, name)


def check_finite_float(value, name: str) -> float:
    """Check that ``value`` is a finite real number (bools and numeric strings refused)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def check_seed(value, name: str = "seed", *, limit: int = SEED_LIMIT) -> int:
    """Check that ``value`` is a seed: an integer in ``[0, limit − 1]`` (bools refused); by
    default ``[0, 2**32 − 1]``, the range :func:`pyro.set_rng_seed` accepts (the estimators'
    keys, only hashed, take :data:`KEY_LIMIT`)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 0 <= value < limit:
        raise ValueError(f"{name} must be in [0, {limit - 1}], got {value!r}")
    return int(value)


def check_float_dtype(value, name: str = "dtype", *, allow_none: bool = True):
    """Check that ``value`` is ``torch.float32`` or ``torch.float64`` (or ``None``, for
    torch's default dtype, where allowed). Half precision is refused: its 11-bit significand
    cannot hold dequantization noise (near 255, values are multiples of 1/8)."""
    if value is None and allow_none:
        return None
    if value not in (torch.float32, torch.float64):
        allowed = "torch.float32 or torch.float64" + (" (or None)" if allow_none else "")
        raise ValueError(f"{name} must be a floating-point torch.dtype, {allowed}, got {value!r}")
    return value


def check_positive_float(value, name: str) -> float:
    """Check that ``value`` is a finite real number > 0."""
    if check_finite_float(value, name) <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_representable(
    value, name: str, *, power: int = 1, allow_zero: bool = False, dtype=None
) -> float:
    """Check that ``value`` is a real number > 0 (or 0, with ``allow_zero``) whose
    ``power``-th power and its reciprocal are normal numbers of ``dtype`` (default: torch's
    default dtype, the one the models are built in): a standard deviation σ with ``power=2``
    (a Gaussian log-density computes σ² and 1/σ²), a variance with ``power=1``. In float32
    that is 1.1e-19 ≤ σ ≤ 9.2e18 and 1.2e-38 ≤ σ² ≤ 8.5e37; past them the densities are
    infinite or NaN for every data point.

    :raises ValueError: naming ``name``, the value and the range that works.
    """
    if allow_zero:
        check_nonnegative_float(value, name)
        if value == 0:
            return 0.0
    else:
        check_positive_float(value, name)
    dtype = dtype or torch.get_default_dtype()
    tiny = torch.finfo(dtype).tiny
    low, high = tiny ** (1 / power), (1 / tiny) ** (1 / power)
    if not low <= value <= high:
        what = "its square and the square's reciprocal" if power == 2 else "it and its reciprocal"
        wider = (
            "; torch.set_default_dtype(torch.float64) before building widens the range"
            if dtype != torch.float64
            else ""
        )
        raise ValueError(
            f"{name} must lie in [{low:.2g}, {high:.2g}] in {dtype} (where "
            f"{what} are normal "
            f"numbers){' or be 0' if allow_zero else ''}, got {value!r}{wider}"
        )
    return float(value)


def check_nonnegative_float(value, name: str) -> float:
    """Check that ``value`` is a finite real number ≥ 0."""
    if check_finite_float(value, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def check_sizes(value, name: str) -> tuple[int, ...]:
    """Check a sequence of layer widths (possibly empty, for an affine map)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}")
    sizes = tuple(value)
    for size in sizes:
        check_positive_int(size, f"every entry of {name}")
    return sizes


def check_labels(labels, num_points: int, name: str = "labels") -> torch.Tensor:
    """Check that ``labels`` are class labels, one per point: an integer :class:`torch.Tensor`
    of shape ``(num_points,)``."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != num_points:
        raise ValueError(
            f"{name} must have one entry per point, shape ({num_points},), got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class labels, got dtype {labels.dtype}")
    return labels


def check_model_data(model, x: torch.Tensor, name: str) -> None:
    """Check that ``x`` fits ``model`` before anything runs it: its width is the model's
    ``data_dim``, its dtype and device those of the model's parameters (where it has them),
    then the model's own data check, if it has one (``model.check_data(x, name)``), e.g. a
    Bernoulli likelihood refusing grey levels. The errors name the user's argument and index
    rather than a position inside a minibatch or a matmul deep in the decoder."""
    _check_module_fits(model, "model", x, name)
    check = getattr(model, "check_data", None)
    if callable(check):
        check(x, name)


def check_dtypes(model, guide, x: torch.Tensor, name: str) -> None:
    """Check that ``x`` fits the parameters of ``model`` and ``guide``: their ``data_dim``
    (where they state one), and their dtype and device (where they are modules with
    parameters). Torch would otherwise fail deep inside a matmul."""
    for module, role in ((model, "model"), (guide, "guide")):
        _check_module_fits(module, role, x, name)


def check_site(value, name: str = "site") -> str:
    """Check that ``value`` names a sample site (a str)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be the name of a latent site (a str), got {value!r}")
    return value


def check_pair(model, guide, *, guide_required: bool = False) -> None:
    """Check that ``model`` is a Pyro program (a callable: a PyroModule, an ``nn.Module``'s
    method or a plain function of x) and ``guide`` one too, or ``None`` where the caller
    allows it (a prior proposal), before anything reads the data with them."""
    if not callable(model):
        raise TypeError(
            f"model must be a Pyro model, a callable such as a PyroModule or a function of x, "
            f"got {type(model).__name__}"
        )
    if guide is None and not guide_required:
        return
    if not callable(guide):
        raise TypeError(
            f"guide must be a Pyro guide, a callable such as a PyroModule or a function of x"
            f"{'' if guide_required else ' (or None for a prior proposal)'}, got "
            f"{type(guide).__name__}"
        )


def check_pair_data(model, guide, x, name: str = "x") -> torch.Tensor:
    """What every estimator and diagnostic checks before it runs the pair: :func:`check_pair`,
    then of its data :func:`check_data`, :func:`check_model_data` and :func:`check_dtypes`."""
    check_pair(model, guide)
    check_data(x, name)
    check_model_data(model, x, name)
    check_dtypes(model, guide, x, name)
    return x


def _check_module_fits(module, role: str, x: torch.Tensor, name: str) -> None:
    data_dim = getattr(module, "data_dim", None)
    if isinstance(data_dim, Integral) and not isinstance(data_dim, bool):
        if x.dim() != 2:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but the {role} takes flat vectors "
                f"(num_points, data_dim = {data_dim}); flatten it explicitly with "
                f"{name}.flatten(1)"
            )
        if x.shape[1] != data_dim:
            raise ValueError(
                f"{name} has {x.shape[1]} columns (shape {tuple(x.shape)}) but the {role} "
                f"expects data_dim = {data_dim}"
            )
    if isinstance(module, torch.nn.Module):
        parameter = next(module.parameters(), None)
        if parameter is not None and parameter.dtype != x.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the {role}'s parameters are "
                f"{parameter.dtype}; convert one of them explicitly (e.g. "
                f"{name}.to({parameter.dtype}))"
            )
        if parameter is not None and parameter.device != x.device:
            raise TypeError(
                f"{name} is on device {x.device} but the {role}'s parameters are on "
                f"{parameter.device}; move one of them explicitly (e.g. "
                f"{name}.to('{parameter.device}'))"
            )
