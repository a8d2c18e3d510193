"""``python -m circtoolkit``: the same as the ``circtoolkit`` command."""

import sys

from .cli import main

sys.exit(main())
