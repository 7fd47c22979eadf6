"""``python -m pvae.cli``: the ``pvae`` command."""

import sys

from pvae.cli.main import run

sys.exit(run())
