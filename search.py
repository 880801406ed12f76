"""`python search.py data=<dataset> [search=mfas|random] [overrides]`: see README.md and repro/search/run.py."""

from repro.search.run import main

if __name__ == "__main__":
    main()
