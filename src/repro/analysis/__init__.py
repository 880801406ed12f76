"""Analyses: parameter / FLOP / memory counting, and (later) attention and search plots."""
