"""The search record: `search.json` in the search directory, rewritten atomically after every trained
architecture, so a killed search resumes where it stopped and never loses a finished architecture's result.

Schema `repro.search/1`: `status` (running | completed | failed | interrupted, with `error`), `strategy`
(mfas | random), `data`, `seed`, `settings` (the search config; a resumed search must have the same),
`space` (modalities, taps, non-linearities, sizes), `encoders` (checkpoint per modality), `steps` (one per
search step: search iteration, layer, temperature, number of candidates, the architectures trained and the
ones sampled), `evaluations` (every trained architecture: string, codes, step, score, per-epoch history,
seconds), `top` (best distinct architectures by score), `timing`, `hardware`, `versions`, `synthetic`
(the reader read SYNTHETIC fixture data), `debug` (always false: a search has no partial-batch mode) and `identity`
(`repro.provenance`). Reading it is `repro.runs.read_search_record` (train.py reads found architectures too, and
train sits below the search). The surrogate and the shared weights live beside it (`surrogate.pt`, `weights.pt`).
Tables and figures read only these files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from repro.results import atomic_write_text
from repro.runs import SEARCH_FILENAME as FILENAME
from repro.runs import SEARCH_SCHEMA as SCHEMA
from repro.runs import SearchStateError, read_search_record

__all__ = ["FILENAME", "SCHEMA", "SearchState", "SearchStateError", "atomic_torch_save", "read_search_record"]


def atomic_torch_save(obj: object, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SearchState:
    """The search record in memory, saved on every change that must survive a crash."""

    def __init__(self, search_dir: str | Path, record: dict):
        self.dir = Path(search_dir)
        self.record = record

    @classmethod
    def open(cls, search_dir: str | Path, header: dict) -> SearchState:
        """Resume the search in `search_dir` if its settings equal `header['settings']`, else start one."""
        search_dir = Path(search_dir)
        if (search_dir / FILENAME).is_file():
            record = read_search_record(search_dir)
            for key in ("strategy", "data", "seed", "settings", "space"):
                if record.get(key) != header.get(key):
                    raise SearchStateError(
                        f"{search_dir / FILENAME} was started with a different {key} "
                        f"({json.dumps(record.get(key), default=str)[:120]}); resume with the same settings, "
                        "or start a new search with search.dir=<another folder>")
            record["status"] = "running"
            record.pop("error", None)
            return cls(search_dir, record)
        search_dir.mkdir(parents=True, exist_ok=True)
        record = {"schema": SCHEMA, "status": "running", **header, "steps": [], "evaluations": [], "top": [],
                  "timing": {"search_s": 0.0}}
        state = cls(search_dir, record)
        state.save()
        return state

    # -- persistence -------------------------------------------------------------------------------------
    def save(self) -> None:
        atomic_write_text(self.dir / FILENAME, json.dumps(self.record, indent=1, default=str) + "\n")

    def save_tensor_state(self, name: str, obj: object) -> None:
        atomic_torch_save(obj, self.dir / name)

    def load_tensor_state(self, name: str) -> object | None:
        path = self.dir / name
        return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None

    # -- steps and evaluations ------------------------------------------------------------------------------
    def step(self, index: int) -> dict | None:
        for s in self.record["steps"]:
            if s["index"] == index:
                return s
        return None

    def begin_step(self, step: dict) -> dict:
        self.record["steps"].append(step)
        self.save()
        return step

    def evaluation(self, step: int, slot: int) -> dict | None:
        for e in self.record["evaluations"]:
            if e["step"] == step and e["slot"] == slot:
                return e
        return None

    def add_evaluation(self, evaluation: dict) -> None:
        self.record["evaluations"].append(evaluation)
        self.save()

    def best_scores(self) -> dict[str, dict]:
        """Each distinct architecture's best evaluation (the authors keep the max over repeated samples)."""
        best: dict[str, dict] = {}
        for e in self.record["evaluations"]:
            if e["arch"] not in best or e["score"] > best[e["arch"]]["score"]:
                best[e["arch"]] = e
        return best

    def update_top(self, k: int) -> list[dict]:
        ranked = sorted(self.best_scores().values(), key=lambda e: -e["score"])[:k]
        self.record["top"] = [{"rank": r + 1, "arch": e["arch"], "codes": e["codes"], "score": e["score"],
                               "step": e["step"]} for r, e in enumerate(ranked)]
        return self.record["top"]
