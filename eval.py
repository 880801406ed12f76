"""`python eval.py run=<run dir or .ckpt> [split=…] [perturb.…] [overrides]`: see README.md and repro/evaluate.py."""

from repro.allocator import prefer_tcmalloc

if __name__ == "__main__":
    prefer_tcmalloc()  # may re-execute this command under tcmalloc (half the CPU peak memory; repro/allocator.py)
    from repro.evaluate import main

    main()
