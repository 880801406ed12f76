"""`python -m repro.data check|fixture …` (see `repro.data.cli`)."""

from repro.data.cli import main

raise SystemExit(main())
