"""``python -m patchworks_async``: the same command line as ``patchworks``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
