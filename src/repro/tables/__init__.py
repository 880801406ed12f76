"""Paper tables (split in progress): every public name of the former `repro/tables.py`, re-exported."""

import subprocess  # noqa: F401  tests patch `repro.tables.subprocess.run`

from repro.tables.rendering import *  # noqa: F403
from repro.tables.rendering import _TABLE_REF, _write_pom_fixture, main  # noqa: F401
