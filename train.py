"""`python train.py data=<dataset> fusion=<method> [overrides]`: see README.md and repro/train.py."""

from repro.allocator import prefer_tcmalloc

if __name__ == "__main__":
    prefer_tcmalloc()  # may re-execute this command under tcmalloc (half the CPU peak memory; repro/allocator.py)
    from repro.train import main

    main()
