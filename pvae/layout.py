"""The install layout: ``models/`` and ``guides/`` exist only as ``pvae.models``/``pvae.guides``."""

__all__ = ["require_installed_name"]


def require_installed_name(name: str, installed: str) -> None:
    """Refuse to run a package under any name but the one it is installed as.

    ``models/`` and ``guides/`` sit at the top of the repository, so ``import models`` from the
    repository root would succeed and create a second copy of every class (``isinstance``
    checks and registries would then disagree). Their ``__init__`` calls this first.

    :raises ImportError: if ``name`` (the package's ``__name__``) is not ``installed``.
    """
    if name != installed:
        folder = installed.rsplit(".", 1)[-1]
        raise ImportError(
            f"the folder '{folder}/' is installed as {installed!r}, but was imported as {name!r} "
            f"(probably from the repository root). Install pvae (see README.md) and use "
            f"'import {installed}' so that every class exists once."
        )
