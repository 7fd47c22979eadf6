"""The ``pvae`` command: train, evaluate, demo, experiment."""

from pvae.cli.config import TRAIN_DEFAULTS, read_train_config
from pvae.cli.main import main, run

__all__ = ["TRAIN_DEFAULTS", "main", "read_train_config", "run"]
