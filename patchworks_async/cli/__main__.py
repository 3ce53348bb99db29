"""``python -m patchworks_async.cli``, which worked while the command line was one module."""

import sys

from . import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
