"""The MFAS search loop (mfas.txt §3.2, Algorithm 1) and the random-search baseline of MFAS Table 1.

Sequential model-based optimisation with progressive unfolding, organised as the authors' `_epnas`
(IMPLEMENTATION-NOTES §3.2), which is what the paper's step counts (Table 6: E_search × L steps) and Fig. 5
describe: for search iteration s = 1..E_search, for layer l = 1..L:

1. candidates = every one-layer change of the architectures sampled at the previous step: layer l replaced
   by each of the M·N·P triplets if the architecture has a layer l, else appended (first step: the M·N·P
   one-layer architectures);
2. the very first step trains **all** candidates (Alg. 1 lines 11–16) and fits the surrogate π on them;
   every later step predicts the candidates' scores with π;
3. K candidates are sampled without replacement with temperature-scaled probabilities
   (`repro.search.sampling`), trained for E_train epochs, added to π's data (an architecture sampled twice
   keeps its best score) and π is updated;
4. the temperature follows the inverse-exponential schedule over the step index.
At the end the top-k distinct architectures by real validation score are returned (Alg. 1 line 30).

Random search (strategy ``random``) has the same steps and budget: the first step trains every one-layer
architecture, every later step trains K architectures drawn uniformly from the whole space with the depth
MFAS's candidates have at that step (l layers in the first search iteration, L afterwards)
(the authors' `_randsearch` draws per layer from the last layer's options — a QUIRK that changes nothing when,
as here, every layer has the same options).

Resumption: the record is saved before a step trains anything (its sampled set) and after every trained
architecture; the surrogate and shared weights after every update. Every random draw is seeded from
(seed, step, slot), so a resumed search takes the same decisions as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from repro.models.fusion.mfas_space import Architecture, SearchSpace
from repro.search.sampling import sample_without_replacement, step_index, temperature
from repro.search.state import SearchState
from repro.search.surrogate import RecurrentSurrogate
from repro.search.trainer import Evaluation, WeightBank

log = logging.getLogger(__name__)

STRATEGIES = ("mfas", "random")
SURROGATE_FILE = "surrogate.pt"
WEIGHTS_FILE = "weights.pt"


@dataclass
class SearchSettings:
    """Config `search` (defaults: the paper's AV-MNIST budget, mfas.txt §4.1 and Table 6)."""

    strategy: str = "mfas"
    iterations: int = 3  # E_search
    max_layers: int = 4  # L
    samples: int = 15  # K
    top: int = 5
    t_max: float = 10.0
    t_min: float = 0.2
    sigma: float = 4.0
    temperature_index: str = "paper"  # paper: s·L + l | authors: QUIRK s·E + l
    surrogate: dict = field(default_factory=lambda: {"encoding": "one_hot", "epochs": 50, "lr": 1e-3,
                                                     "embed_size": 100, "hidden_size": 100})
    weight_sharing: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"search.strategy {self.strategy!r}: choose one of {STRATEGIES}")

    @property
    def num_steps(self) -> int:
        return self.iterations * self.max_layers


# train(codes, seed, bank) -> Evaluation
TrainFn = Callable[[np.ndarray, int, "WeightBank | None"], Evaluation]


def expand(space: SearchSpace, previous: list[Architecture] | None, layer: int) -> list[Architecture]:
    """Step 1 above: the one-layer changes at `layer` (0-based) of every previously sampled architecture."""
    choices = space.layer_choices()
    if not previous:
        return [(c,) for c in choices]
    out: dict[Architecture, None] = {}
    for arch in previous:
        for c in choices:
            new = list(arch)
            if layer < len(new):
                new[layer] = c
            else:
                new.append(c)
            out[tuple(new)] = None
    return list(out)


def random_architectures(space: SearchSpace, num_layers: int, k: int, rng: np.random.Generator) -> list[Architecture]:
    """k distinct architectures with `num_layers` layers, uniform over the space (no enumeration needed)."""
    m, n, p = space.shape
    k = min(k, space.size(num_layers))
    out: dict[Architecture, None] = {}
    while len(out) < k:
        codes = np.stack([rng.integers(0, m, num_layers), rng.integers(0, n, num_layers),
                          rng.integers(0, p, num_layers)], axis=1)
        out[space.from_codes(codes)] = None
    return list(out)


class Search:
    """One search (MFAS or random) over `space`, recording everything in `state`."""

    def __init__(self, space: SearchSpace, settings: SearchSettings, state: SearchState, train: TrainFn, seed: int,
                 progress: Callable[[str], None] | None = None):
        self.space, self.settings, self.state, self.train_fn, self.seed = space, settings, state, train, seed
        self.report = progress or log.info
        torch.manual_seed(seed)
        s = settings.surrogate
        self.surrogate = RecurrentSurrogate(space.shape, encoding=s["encoding"], embed_size=s["embed_size"],
                                            hidden_size=s["hidden_size"], lr=s["lr"])
        saved = state.load_tensor_state(SURROGATE_FILE)
        if saved is not None:
            self.surrogate.load_full_state(saved)
        self.bank = None
        if settings.weight_sharing:
            self.bank = WeightBank(state.load_tensor_state(WEIGHTS_FILE))

    # -- one step ------------------------------------------------------------------------------------------
    def _temperature(self, si: int, layer: int) -> float:
        s = self.settings
        it = step_index(si, layer, s.max_layers, s.iterations, s.temperature_index)
        return temperature(it, s.t_max, s.t_min, s.sigma)

    def _plan_step(self, index: int, si: int, layer: int, previous: list[Architecture] | None) -> dict:
        """Decide what a step trains (and, for MFAS after the first step, what it samples)."""
        s, temp = self.settings, self._temperature(si, layer)
        rng = np.random.default_rng([self.seed, index])
        step = {"index": index, "search_iteration": si, "layer": layer, "temperature": temp, "done": False}
        if index == 0:
            candidates = expand(self.space, None, 0)
            step.update(num_candidates=len(candidates), train=[self.space.format(a) for a in candidates])
        elif s.strategy == "random":
            depth = layer + 1 if si == 0 else s.max_layers  # the depths MFAS's candidates have at this step
            chosen = random_architectures(self.space, depth, s.samples, rng)
            step.update(num_candidates=self.space.size(depth), train=[self.space.format(a) for a in chosen])
        else:
            candidates = expand(self.space, previous, layer)
            predicted = self.surrogate.predict([self.space.codes(a) for a in candidates])
            chosen = [candidates[i] for i in sample_without_replacement(predicted, s.samples, temp, rng)]
            step.update(num_candidates=len(candidates), train=[self.space.format(a) for a in chosen],
                        predicted_max=float(predicted.max()), predicted_mean=float(predicted.mean()))
        return step

    def _train_step(self, step: dict) -> None:
        total = len(step["train"])
        for slot, text in enumerate(step["train"]):
            if self.state.evaluation(step["index"], slot) is not None:
                continue  # trained before an interruption
            arch = self.space.parse(text)
            codes = self.space.codes(arch)
            seed = self.seed * 1_000_003 + step["index"] * 1_000 + slot
            result = self.train_fn(codes, seed, self.bank)
            self.state.add_evaluation({"arch": text, "codes": codes.tolist(), "layers": len(arch),
                                       "step": step["index"], "slot": slot, "seed": seed, "score": result.score,
                                       "history": result.history, "seconds": round(result.seconds, 3),
                                       "train_steps": result.steps})
            if self.bank is not None:
                self.state.save_tensor_state(WEIGHTS_FILE, self.bank.state())
            self.report(f"step {step['index'] + 1}/{self.settings.num_steps} arch {slot + 1}/{total}: "
                        f"val={result.score:.4f} ({result.seconds:.1f}s) {text}")

    def _update_surrogate(self, index: int) -> None:
        best = self.state.best_scores()
        codes = [np.asarray(e["codes"]) for e in best.values()]
        torch.manual_seed(self.seed + index)
        mse = self.surrogate.fit(codes, [e["score"] for e in best.values()], epochs=self.settings.surrogate["epochs"])
        self.state.save_tensor_state(SURROGATE_FILE, self.surrogate.full_state())
        self.state.step(index)["surrogate_mse"] = mse

    def _finish_first_step(self, step: dict) -> None:
        """MFAS's first step samples its K from the real scores of everything it trained."""
        if self.settings.strategy != "mfas":
            step["sampled"] = step["train"]
            return
        scores = [self.state.evaluation(0, k)["score"] for k in range(len(step["train"]))]
        rng = np.random.default_rng([self.seed, 0, 1])
        picked = sample_without_replacement(scores, self.settings.samples, step["temperature"], rng)
        step["sampled"] = [step["train"][i] for i in picked]

    # -- the whole search ------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        s = self.settings
        previous: list[Architecture] | None = None
        for si in range(s.iterations):
            for layer in range(s.max_layers):
                index = si * s.max_layers + layer
                step = self.state.step(index)
                if step is None:
                    step = self.state.begin_step(self._plan_step(index, si, layer, previous))
                if not step["done"]:
                    started = time.perf_counter()
                    self._train_step(step)
                    if index == 0:
                        self._finish_first_step(step)
                    elif "sampled" not in step:
                        step["sampled"] = step["train"]
                    if s.strategy == "mfas":
                        self._update_surrogate(index)
                    step["seconds"] = round(step.get("seconds", 0.0) + time.perf_counter() - started, 3)
                    step["done"] = True
                    self.state.update_top(s.top)
                    self.state.save()
                previous = [self.space.parse(t) for t in step["sampled"]]
        return self.state.update_top(s.top)
