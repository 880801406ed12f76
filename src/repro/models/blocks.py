"""Small pieces every family of networks builds from: the classifier MLP and the per-modality size setting.

One `mlp` serves the concatenation head (`fusion/concat.py`), the sequence classifiers (EF/LF-LSTM, TFN) and the
LSTHM family's sub-networks (MARN's A and G, RMFN's summary, the output MLP); one `per_modality` reads every setting
given as one int for all modalities or as a {modality: int} mapping (LSTM and LSTHM sizes, MulT kernel sizes, TFN
sub-networks, the unimodal LSTM).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from torch import nn


def hidden_sizes(hidden: int | Sequence[int] | None) -> list[int]:
    """The hidden layer sizes of an MLP: an int (one layer; <= 0 = none), a list, or None (none)."""
    if hidden is None or (isinstance(hidden, int) and hidden <= 0):
        return []
    if isinstance(hidden, int):
        return [hidden]
    return [int(h) for h in hidden]


def mlp(in_dim: int, hidden: int | Sequence[int] | None, out_dim: int, dropout: float = 0.0, *,
        dropout_at_zero: bool = False) -> nn.Sequential:
    """Linear -> ReLU -> Dropout per hidden size, then Linear(out_dim).

    The Dropout module is left out at p = 0 unless `dropout_at_zero` (the LSTHM family always had one, and its
    position is part of its checkpoints' keys: `1.` ReLU, `2.` Dropout, `3.` Linear).
    """
    layers: list[nn.Module] = []
    for h in hidden_sizes(hidden):
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        if dropout > 0 or dropout_at_zero:
            layers.append(nn.Dropout(float(dropout)))
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def per_modality(value: int | Mapping[str, int] | None, modalities: Iterable[str], key: str,
                 defaults: Mapping[str, int] | None = None) -> dict[str, int]:
    """{modality: positive int} from one int for every modality or a {modality: int} mapping (keys of other
    modalities are ignored, so one mapping serves several presets; `defaults` fill the modalities it leaves out).
    `key` is the fusion.net key named in the one-line error."""
    modalities = list(modalities)
    if isinstance(value, int) and not isinstance(value, bool):
        merged = {m: value for m in modalities}
    elif value is None or hasattr(value, "keys"):
        merged = {**(defaults or {}), **{str(k): v for k, v in dict(value or {}).items()}}
    else:
        raise ValueError(f"fusion.net.{key} must be an int or a {{modality: int}} mapping, got {value!r}")
    missing = [m for m in modalities if m not in merged]
    if missing:
        raise ValueError(f"fusion.net.{key} gives no size for modalities {missing}; set {key}.<modality> in the "
                         "fusion config")
    sizes = {m: int(merged[m]) for m in modalities}
    bad = {m: merged[m] for m, size in sizes.items() if size < 1}
    if bad:
        raise ValueError(f"fusion.net.{key} must give a positive int per modality {modalities}, got {bad}")
    return sizes
