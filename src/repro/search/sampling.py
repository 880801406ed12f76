"""Temperature-scaled sampling of architectures (mfas.txt §3.2, Alg. 1 lines 20–21 and 27; EPNAS).

Probabilities: p_i ∝ (a_i / Σ_j a_j)^(1/T) over the candidates' (predicted or real) scores a_i,
renormalised; K candidates are drawn without replacement. A high T flattens the distribution (explore,
the surrogate is not trusted yet); a low T concentrates it on the best predictions.

Schedule (the authors' `tools.py`, inverse-exponential as in the paper's Fig. 5):

    T(it) = (T_max − T_min) · exp(−(it + 1)² / σ²) + T_min

with `it` the index of the search step. The paper's steps are numbered it = s_i·L + l (search iteration
s_i, layer l). QUIRK `temperature_index=authors`: the authors' code uses it = s_i·E + l (E = search
iterations), which repeats or skips indices when E ≠ L.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TEMPERATURE_INDICES = ("paper", "authors")


def step_index(search_iteration: int, layer: int, num_layers: int, num_iterations: int, mode: str = "paper") -> int:
    if mode not in TEMPERATURE_INDICES:
        raise ValueError(f"temperature_index {mode!r}: choose one of {TEMPERATURE_INDICES}")
    stride = num_layers if mode == "paper" else num_iterations
    return search_iteration * stride + layer


def temperature(it: int, t_max: float = 10.0, t_min: float = 0.2, sigma: float = 4.0) -> float:
    return (t_max - t_min) * math.exp(-((it + 1) ** 2) / sigma**2) + t_min


def sampling_probabilities(scores: Sequence[float], temp: float) -> np.ndarray:
    a = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, None)
    # In log space: (a/Σa)^(1/T) underflows for small T.
    logp = (np.log(a) - np.log(a.sum())) / temp
    p = np.exp(logp - logp.max())
    return p / p.sum()


def sample_without_replacement(scores: Sequence[float], k: int, temp: float, rng: np.random.Generator) -> list[int]:
    """Indices of min(k, n) candidates drawn without replacement with temperature-scaled probabilities."""
    p = sampling_probabilities(scores, temp)
    k = min(int(k), len(p))
    # Draw one at a time and renormalise, as the authors' sampler; numpy's choice(replace=False, p=...) does
    # the same, but zero-probability entries (after underflow) would make it fail.
    chosen: list[int] = []
    p = p.copy()
    for _ in range(k):
        if p.sum() <= 0:
            p[[i for i in range(len(p)) if i not in chosen]] = 1.0
        i = int(rng.choice(len(p), p=p / p.sum()))
        chosen.append(i)
        p[i] = 0.0
    return chosen
