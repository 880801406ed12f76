"""`python -m repro.tables list | run <table> | render <table>`."""

import sys

from repro.tables.rendering import main

sys.exit(main())
