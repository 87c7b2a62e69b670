"""``python3 -m bench``: see bench/cli.py and docs/PERFORMANCE.md."""

import sys

from bench.cli import main

sys.exit(main())
