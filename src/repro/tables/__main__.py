"""`python -m repro.tables list | run <table> | render <table>` (the command line is `repro.tables.cli`)."""

import sys

from repro.tables.cli import main

sys.exit(main())
