"""``python -m bondha``: the same as the ``bondha`` command."""

import sys

from .cli import main

sys.exit(main())
