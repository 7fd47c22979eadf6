"""Up-front argument checks whose errors name the argument and the offending value."""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = [
    "check_binary",
    "check_choice",
    "check_data",
    "check_dtypes",
    "check_model_data",
    "check_nonnegative_float",
    "check_num_levels",
    "check_positive_float",
    "check_positive_int",
    "check_sizes",
    "check_unit_interval",
]


def check_data(x, name: str = "data", *, dim: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a non-empty, finite, floating-point ``(num_points, dim)`` tensor.

    :param x: the tensor to check.
    :param str name: the argument name used in error messages.
    :param int dim: the expected trailing size, if known.
    :returns: ``x`` itself (never a converted copy: nothing is silently coerced).
    :raises TypeError: if ``x`` is not a floating-point :class:`torch.Tensor`.
    :raises ValueError: on a wrong rank or size, no rows, or a NaN/inf entry (the first one's
        index is named).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it explicitly, e.g. {name}.to(torch.get_default_dtype())"
        )
    if x.dim() != 2:
        raise ValueError(
            f"{name} must have shape (num_points, data_dim), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (data_dim), got shape {tuple(x.shape)}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        row, col = (int(i) for i in (~finite).nonzero()[0])
        raise ValueError(
            f"{name} contains a non-finite value {x[row, col].item()} at index [{row}, {col}] "
            f"({int((~finite).sum())} non-finite entries in all)"
        )
    return x


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
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return value


def check_choice(value, name: str, choices) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
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
    """Check that ``value`` is an integer ≥ 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def check_nonnegative_int(value, name: str) -> int:
    """Check that ``value`` is an integer ≥ 0 (bools refused), e.g. a seed."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_positive_float(value, name: str) -> float:
    """Check that ``value`` is a finite real number > 0."""
    if _check_real(value, name) <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_nonnegative_float(value, name: str) -> float:
    """Check that ``value`` is a finite real number ≥ 0."""
    if _check_real(value, name) < 0:
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


def check_model_data(model, x: torch.Tensor, name: str) -> None:
    """Run the model's own data check, if it has one (``model.check_data(x, name)``), e.g. a
    Bernoulli likelihood refusing grey levels, so that the error names the user's argument
    and index rather than a position inside a minibatch."""
    check = getattr(model, "check_data", None)
    if callable(check):
        check(x, name)


def check_dtypes(model, guide, x: torch.Tensor, name: str) -> None:
    """Check that ``x`` has the dtype of the parameters of ``model`` and ``guide`` (where they
    are modules with parameters): torch would otherwise fail deep inside a matmul."""
    for module, role in ((model, "model"), (guide, "guide")):
        if isinstance(module, torch.nn.Module):
            dtype = next((p.dtype for p in module.parameters()), None)
            if dtype is not None and dtype != x.dtype:
                raise TypeError(
                    f"{name} has dtype {x.dtype} but the {role}'s parameters are {dtype}; "
                    f"convert one of them explicitly (e.g. {name}.to({dtype}))"
                )
