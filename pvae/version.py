"""pvae's version: one place, read by ``pyproject.toml``, the package and its checkpoints."""

__all__ = ["__version__"]

__version__ = "0.1.0"
