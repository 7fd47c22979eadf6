"""``python -m pvae.cli``: the ``pvae`` command."""

import sys

from pvae.cli.main import main

sys.exit(main())
