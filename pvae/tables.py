"""Result tables written by the CLI and the experiments: CSV or JSON, by the file's suffix."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["write_table"]


def write_table(path, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with the same keys) to ``path``: JSON if it ends in ``.json``,
    else CSV with a header row. Creates the parent folder."""
    path = Path(path)
    if not rows:
        raise ValueError(f"no rows to write to {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=2) + "\n")
        return path
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
