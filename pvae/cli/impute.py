"""``pvae impute``: fill in the missing (NaN) entries of an ``.npy`` file with a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pvae import checkpoint
from pvae.files import check_output_path, write_arrays
from pvae.imputation.impute import impute

__all__ = ["impute_command", "read_missing"]


def read_missing(path: Path, data_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, tuple]:
    """The points of the ``.npy`` file ``path`` (floats, NaN where missing) as ``(n, data_dim)``
    in ``dtype``, and their shape in the file: ``(n, d)``, or images ``(n, h, w)`` (any
    trailing shape with ``data_dim`` entries), flattened here and restored in the output.

    :raises ValueError: for a file that is not a float array of that many entries per point.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"data file {str(path)!r} is not a .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"data file {str(path)!r} holds several arrays (.npz); give one .npy")
    if array.dtype.kind != "f":
        raise ValueError(
            f"data file {str(path)!r} holds {array.dtype} values; pvae impute reads floats "
            "with NaN marking the missing entries"
        )
    if array.ndim < 2 or array.shape[0] == 0 or math.prod(array.shape[1:]) != data_dim:
        raise ValueError(
            f"data file {str(path)!r} has shape {array.shape}; the checkpoint's model takes "
            f"points of {data_dim} entries: (n, {data_dim}), or images whose pixels number "
            f"{data_dim}"
        )
    return torch.from_numpy(array.reshape(array.shape[0], -1)).to(dtype), array.shape


def impute_command(args) -> int:
    out = args.out or args.data.with_name(f"{args.data.stem}_imputed.npz")
    check_output_path(out, "--out")
    if out.suffix != ".npz":
        raise ValueError(f"--out {str(out)!r} must end in .npz (an archive of several arrays)")
    loaded = checkpoint.load(args.checkpoint)
    parameter = next(loaded.model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    x, shape = read_missing(args.data, loaded.model.data_dim, dtype)
    result = impute(
        loaded.model,
        loaded.guide,
        x,
        method=args.method,
        num_steps=args.num_steps,
        num_samples=args.num_samples,
        num_particles=args.num_particles,
        seed=args.seed,
        progress=not args.no_progress,
    )
    arrays = {
        "mean": result.mean.reshape(shape),
        "mean_stderr": result.mean_stderr.reshape(shape),
        "samples": result.samples.reshape(result.samples.shape[0], *shape),
        "mask": result.mask.reshape(shape),
    }
    if result.binary:
        arrays["mode"] = result.mode.reshape(shape)
    for name in ("acceptance", "rhat", "ess", "khat"):
        if getattr(result, name) is not None:
            arrays[name] = getattr(result, name)
    saved = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
    saved["status"] = np.array(result.status)
    write_arrays(out, saved)
    name = f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']}"
    print(f"{result!r}\n  pair             {name} from {str(args.checkpoint)!r}")
    print(f"wrote {out} ({', '.join(saved)})")
    return 0
