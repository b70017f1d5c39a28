"""``python -m server [options]`` is ``loom serve [options]``."""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
