"""The entry point of the ``pvae`` command."""

from __future__ import annotations

import logging
import sys

from pvae.cli.evaluate import evaluate_command
from pvae.cli.experiment import demo_command, experiment_command
from pvae.cli.parser import build_parser
from pvae.cli.train import train_command

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvae`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    commands = {
        "train": train_command,
        "evaluate": evaluate_command,
        "demo": demo_command,
        "experiment": experiment_command,
    }
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        name = " ".join(filter(None, (args.command, getattr(args, "experiment", None))))
        print(f"pvae {name}: error: {error}", file=sys.stderr)
        return 2
