"""MICA Table 6 and Fig. 4 from a trained MulT / MICA run (mica.txt §4.4):
`python -m repro.analysis.attention_alignment`.

For every cross-modal unit t <- s, forward hooks on its LAST layer's attention capture the queries (target) and
keys (source) per head and the attention probabilities while the test split runs through the network (eval mode,
no gradients). Then:

- A-distance (per unit, and the mean over the six units): `proxy_a_distance` between the real query elements and
  the real key elements (heads concatenated, up to `--max-elements` of each, seeded).
- Corr. Acc (text <- vision and text <- audio, and their mean): the ground-truth frame span of every word is
  recovered from the word-aligned pickle of the same segments (`spans_from_datasets`: an aligned vector is the mean
  of its word's frames); for each word with a span, is the frame with the highest head-averaged attention inside it?
  Padded key frames are excluded. Without the aligned file (or with no recoverable word) Corr. Acc is null and the
  record says why.
- Recovered words: the ground truth is exact only where an aligned vector really is the mean of its word's frames;
  a word whose span cannot be recovered (no frame interval has its mean, e.g. its features were re-processed after
  alignment, or several spans tie) is left out of Corr. Acc. The record says how many: ``words_total`` (real words
  of the test split) and ``words_recovered`` (per unit, the words Corr. Acc counts); ``corr_acc_words`` holds the
  per-unit ``words`` / ``recovered`` / ``correct`` counts (Corr. Acc of a unit = correct / recovered).

The record (`alignment.json`, schema repro.alignment/1) is written atomically; `--figure` also draws Fig. 4 (the
head-averaged attention of one unit's last layer for one test example, words × frames, ground-truth spans outlined).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

from repro.analysis import runs
from repro.analysis.attention_alignment import (
    attention_figure,
    correlation_counts,
    proxy_a_distance,
    spans_from_datasets,
)
from repro.config import ConfigError
from repro.data.base import DataError
from repro.results import FILENAME, atomic_write_text, read_record, versions

SCHEMA = "repro.alignment/1"
CORR_UNITS = {"text_with_vision": "vision", "text_with_audio": "audio"}  # unit -> the frames' modality
log = logging.getLogger(__name__)


class LastLayerCapture:
    """Forward hooks on the last layer's attention of every cross-modal unit: queries, keys, probabilities."""

    def __init__(self, net):
        self.store: dict[str, dict[str, list]] = {}
        self.handles = []
        for name, stack in net.crossmodal.items():
            attention = stack.layers[-1].attention
            self.store[name] = {"queries": [], "keys": [], "attention": []}
            self.handles.append(attention.register_forward_hook(self.hook(name, attention)))

    def hook(self, name: str, module):
        def capture(_module, args, _output):
            query, key, _value, mask = args[:4]
            q, k = module.split_heads(query, 0), module.split_heads(key, 1)
            self.store[name]["queries"].append(q.transpose(1, 2).flatten(2))  # (B, T_t, H·d_k)
            self.store[name]["keys"].append(k.transpose(1, 2).flatten(2))
            self.store[name]["attention"].append(module.probabilities(q, k, mask).mean(dim=1))  # (B, T_t, T_s)
        return capture

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def run_test_split(net, datamodule):
    """Run the test split; returns the capture and the per-modality (N, T) masks."""
    if not hasattr(net, "crossmodal"):
        raise ConfigError(f"{type(net).__name__} has no cross-modal units; the alignment analysis needs a MulT or "
                          "MICA run")
    capture = LastLayerCapture(net)
    masks: dict[str, list] = {m: [] for m in net.modalities}
    try:
        with torch.no_grad():
            for batch in datamodule.test_dataloader():
                net(batch)
                for m in net.modalities:
                    masks[m].append(batch.get(f"{m}_mask", torch.ones(batch[m].shape[:2], dtype=torch.bool)))
    finally:
        capture.remove()
    return capture, {m: torch.cat(v) for m, v in masks.items()}


def real_elements(parts: list[torch.Tensor], mask: torch.Tensor, limit: int, rng) -> np.ndarray:
    x = torch.cat(parts)[mask].numpy()
    return x[rng.choice(len(x), size=limit, replace=False)] if len(x) > limit else x


def a_distances(capture, masks, max_elements: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, store in capture.store.items():
        target, source = name.split("_with_")
        queries = real_elements(store["queries"], masks[target], max_elements, rng)
        keys = real_elements(store["keys"], masks[source], max_elements, rng)
        out[name] = proxy_a_distance(queries, keys, seed=seed)
    return out


def aligned_test_split(cfg):
    """The word-aligned test split of the same dataset (the ground truth of Corr. Acc), or None and why."""
    if cfg.data.reader.get("aligned", True):
        return None, "the run's data is not the unaligned release"
    try:
        return instantiate(cfg.data.reader, aligned=True).load(cfg.fold)["test"], None
    except DataError as err:
        return None, f"no aligned companion file ({err})"


def correlation(capture, masks, cfg, unaligned_test) -> tuple[dict, str | None, dict]:
    """({unit: Corr. Acc or None}, why Corr. Acc is missing or None, {unit: {words, recovered, correct}}).

    Corr. Acc of a unit counts the recovered words only: correct / recovered (None when no word is recovered).
    """
    aligned, reason = aligned_test_split(cfg)
    if aligned is None:
        return {}, reason, {}
    out, words = {}, {}
    for unit, modality in CORR_UNITS.items():
        if unit not in capture.store:
            continue
        spans, counts = spans_from_datasets(aligned, unaligned_test, modality=modality)
        attention = torch.cat(capture.store[unit]["attention"]).numpy()
        correct, total = correlation_counts(attention, spans, key_mask=masks[modality].numpy())
        out[unit] = correct / total if total else None
        words[unit] = {**counts, "correct": correct}
    if not out:
        return out, "no unit text <- vision/audio", words
    if not any(v is not None for v in out.values()):
        return out, "no word's frame span could be recovered from the aligned file", words
    return out, None, words


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def analyse(run_dir: Path, max_elements: int = 5000, seed: int = 0) -> tuple[dict, object, dict, object]:
    cfg, net, datamodule = runs.load_run(run_dir)
    capture, masks = run_test_split(net, datamodule)
    a_dist = a_distances(capture, masks, max_elements, seed)
    corr, reason, words = correlation(capture, masks, cfg, datamodule.splits["test"])
    record = {
        "schema": SCHEMA, "status": "completed", "run": str(run_dir), "fusion": str(cfg.fusion.name),
        "data": str(cfg.data.name), "seed": int(cfg.seed), "synthetic": bool(getattr(datamodule.reader,
                                                                                     "synthetic", False)),
        "debug": bool(read_record(Path(run_dir) / FILENAME).get("debug")),  # analysing a debug run gives no result
        "a_distance": mean(a_dist.values()), "a_distance_per_unit": a_dist,
        "corr_acc": mean(corr.values()), "corr_acc_per_unit": corr, "corr_acc_words": words,
        # Table 6's recovered / total words: the words Corr. Acc counts out of the test split's real words
        "words_total": next((c["words"] for c in words.values()), None),
        "words_recovered": {unit: c["recovered"] for unit, c in words.items()},
        "corr_acc_missing": reason, "max_elements": max_elements, "versions": versions(),
    }
    return record, capture, masks, datamodule


def draw_figure(capture, datamodule, cfg_unit: str, example: int, out: Path, synthetic: bool) -> Path:
    if cfg_unit not in capture.store:
        raise ConfigError(f"unknown unit {cfg_unit!r}; units: {sorted(capture.store)}")
    attention = torch.cat(capture.store[cfg_unit]["attention"])[example].numpy()
    title = f"{cfg_unit}, last layer, test example {example} (mica.txt Fig. 4)"
    return attention_figure(attention, None, out, title, synthetic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished MulT / MICA run directory (has results.json)")
    parser.add_argument("--out", type=Path, default=None, help="record path (default <run_dir>/alignment.json)")
    parser.add_argument("--max-elements", type=int, default=5000, help="query/key elements per unit for A-distance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, default=None, help="also draw Fig. 4 to this PNG")
    parser.add_argument("--unit", default="text_with_vision", help="unit of the figure (target_with_source)")
    parser.add_argument("--example", type=int, default=0, help="test-split index of the figure")
    args = parser.parse_args(argv)
    try:
        record, capture, _, datamodule = analyse(args.run_dir, args.max_elements, args.seed)
        if args.figure:
            draw_figure(capture, datamodule, args.unit, args.example, args.figure, record["synthetic"])
    except (ConfigError, DataError, ValueError) as err:
        print(f"error: {err}")
        return 2
    out = args.out or args.run_dir / "alignment.json"
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    corr = "–" if record["corr_acc"] is None else f"{100 * record['corr_acc']:.1f} %"
    recovered = ", ".join(f"{unit} {n}" for unit, n in record["words_recovered"].items())
    words = f" over recovered words ({recovered} of {record['words_total']})" if record["words_recovered"] else ""
    print(f"A-distance {record['a_distance']:.3f}, Corr. Acc {corr}{words} → {out}")
    return 0
