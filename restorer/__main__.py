"""``python -m restorer``: see restorer.cli."""

import sys

from restorer.cli import main

sys.exit(main())
