"""`python -m reconciler`: the same entry point as the `reconcile` command."""

import sys

from reconciler.cli import main

sys.exit(main())
