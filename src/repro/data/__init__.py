"""Datasets: one reader module per on-disk format, fixture writers, and the Lightning datamodule.

A reader knows one format exactly and returns `{"train"|"val"|"test": ArrayDataset}` for an optional fold.
A sample is a dict with one tensor per modality, `label` and `id` (DESIGN.md, "Data contract").
"""
