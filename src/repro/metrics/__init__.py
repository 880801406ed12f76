"""Every paper metric, each named by its definition (DESIGN.md, "Task, protocol, metrics").

`METRIC_BUILDERS` maps a task kind's metric family to its builder ``(names, num_classes, **options)``;
the task (`repro.task.TASK_KINDS`) picks one per kind.
"""

from repro.metrics.classification import CLASSIFICATION_METRICS, build_classification_metrics
from repro.metrics.emotion import EMOTION_BCE_METRICS, build_emotion_bce_metrics
from repro.metrics.multilabel import MULTILABEL_METRICS, SamplesF1, build_multilabel_metrics
from repro.metrics.per_label import EMOTION_METRICS, TRAIT_METRICS, build_emotion_metrics, build_trait_metrics
from repro.metrics.sentiment import SENTIMENT_METRICS, build_sentiment_metrics

METRIC_BUILDERS = {
    "classification": build_classification_metrics,
    "multilabel": build_multilabel_metrics,
    "regression": build_sentiment_metrics,
    "per_emotion": build_emotion_metrics,
    "multitrait": build_trait_metrics,
    "emotion_bce": build_emotion_bce_metrics,
}

__all__ = [
    "CLASSIFICATION_METRICS",
    "EMOTION_BCE_METRICS",
    "EMOTION_METRICS",
    "TRAIT_METRICS",
    "METRIC_BUILDERS",
    "MULTILABEL_METRICS",
    "SENTIMENT_METRICS",
    "SamplesF1",
    "build_classification_metrics",
    "build_emotion_bce_metrics",
    "build_emotion_metrics",
    "build_trait_metrics",
    "build_multilabel_metrics",
    "build_sentiment_metrics",
]
