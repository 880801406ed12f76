"""`python search.py data=<dataset> [search=mfas|random] [overrides]`: see README.md and repro/search/run.py."""

from repro.allocator import prefer_tcmalloc

if __name__ == "__main__":
    prefer_tcmalloc()  # may re-execute this command under tcmalloc (half the CPU peak memory; repro/allocator.py)
    from repro.search.run import main

    main()
