"""`python train.py data=<dataset> fusion=<method> [overrides]`: see README.md and repro/train.py."""

from repro.train import main

if __name__ == "__main__":
    main()
