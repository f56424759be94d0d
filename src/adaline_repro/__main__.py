"""`python -m adaline_repro` runs the command line."""

import sys

from adaline_repro.cli import main

sys.exit(main())
