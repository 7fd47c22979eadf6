"""Memory budgets: parse ``max_memory=`` arguments and measure what a computation allocates."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from numbers import Integral

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pvae.validation import check_positive_int

__all__ = ["check_pass_options", "parse_memory", "peak_memory"]

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_memory(value, name: str = "max_memory") -> int:
    """A memory size in bytes from an integer (bytes) or a string such as ``"512MiB"``,
    ``"2GB"`` or ``"1.5 GiB"`` (units B, KB, MB, GB, TB powers of 1000; KiB, MiB, GiB, TiB powers
    of 1024; case-insensitive).

    :raises ValueError: naming ``name`` and the value, for anything else or a size below 1 byte.
    """
    if isinstance(value, Integral) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"{name} must be at least 1 byte, got {value!r}")
        return int(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match and match.group(2).upper() in _UNITS:
            size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
            if size >= 1:
                return size
    raise ValueError(
        f"{name} must be an integer number of bytes or a string like '512MiB' or '2GB', "
        f"got {value!r}"
    )


def check_pass_options(chunk_size, max_memory, per_pass: str) -> None:
    """Check ``chunk_size`` (a positive integer) and ``max_memory`` (:func:`parse_memory`),
    refusing both at once: ``chunk_size`` fixes the ``per_pass`` (e.g. "rows per pass"),
    ``max_memory`` picks them."""
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size")
        if max_memory is not None:
            raise ValueError(
                f"give chunk_size ({chunk_size!r}) or max_memory ({max_memory!r}), not both: "
                f"chunk_size fixes the {per_pass}, max_memory picks them"
            )
    if max_memory is not None:
        parse_memory(max_memory, "max_memory")


class _LiveBytes(TorchDispatchMode):
    """Count the bytes held by the tensors that torch operations allocate inside the mode,
    released when their last tensor is garbage-collected; ``peak`` is the most held at once.

    Views and in-place results share their input's storage and add nothing; storages that
    existed before (parameters, inputs) are never counted.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says
        # no, and importing torch._dynamo for that costs about 2 s on the first estimate of a
        # process. Nothing is compiled inside this mode, so there is nothing to disable.
        return False

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # data_ptr -> [nbytes, tensors holding it]
        self._tensors: set[int] = set()  # ids of live tracked tensors

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and id(tensor) not in self._tensors:
                self._track(tensor, inputs)
        return out

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0:  # no memory (empty tensor)
            return
        entry = self._storages.get(key)
        if entry is None:
            if key in inputs:  # a view or in-place result of storage allocated before
                return
            entry = self._storages[key] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        self._tensors.add(id(tensor))
        weakref.finalize(tensor, self._release, id(tensor), key)

    def _release(self, tensor_id: int, key: int) -> None:
        self._tensors.discard(tensor_id)
        entry = self._storages.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self._storages[key]


def peak_memory(fn: Callable[[], object]) -> int:
    """The peak number of bytes held at once by tensors that ``fn()`` allocates (its result
    included while it is alive within the call), on any device. A measurement of torch's own
    allocations, without allocator rounding or caching: a slight under-estimate of what the
    process's resident memory grows by."""
    meter = _LiveBytes()
    with meter:
        fn()
    return meter.peak
