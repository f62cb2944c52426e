"""``python -m skinlesion``: the same as the ``skinlesion`` command."""
import sys

from skinlesion.cli import main

if __name__ == "__main__":
    sys.exit(main())
