"""`python -m streams.cli`: the same as the `proofrecon` command."""

import sys

from streams.cli.main import main

sys.exit(main())
