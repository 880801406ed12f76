"""Every paper metric, each named by its definition (DESIGN.md, "Task, protocol, metrics")."""

from repro.metrics.classification import CLASSIFICATION_METRICS, build_classification_metrics

__all__ = ["CLASSIFICATION_METRICS", "build_classification_metrics"]
