"""MFAS search pieces: temperature schedule, sampling, surrogate, candidate expansion, the loop, resumption."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repro.models.fusion.mfas_space import SearchSpace
from repro.search.algorithm import Search, SearchSettings, expand, random_architectures
from repro.search.sampling import sample_without_replacement, sampling_probabilities, step_index, temperature
from repro.search.state import SearchState, SearchStateError, read_search_record
from repro.search.surrogate import RecurrentSurrogate
from repro.search.trainer import Evaluation

SPACE = SearchSpace("audio", "image", ("conv1", "conv2", "conv3", "conv4", "conv5"), ("conv1", "conv2", "conv3"))


# -- temperature and sampling ----------------------------------------------------------------------------------


def test_temperature_schedule_is_the_authors_inverse_exponential():
    assert temperature(0) == pytest.approx(9.8 * math.exp(-1 / 16) + 0.2)
    temps = [temperature(i) for i in range(12)]
    assert all(a > b for a, b in zip(temps, temps[1:]))  # strictly decreasing
    assert temps[-1] == pytest.approx(0.2, abs=2e-3)  # ~T_min by the 12th AV-MNIST step


def test_step_index_paper_and_authors_quirk():
    assert [step_index(s, l, 4, 3) for s in range(3) for l in range(4)] == list(range(12))
    quirk = [step_index(s, l, 4, 3, "authors") for s in range(3) for l in range(4)]
    assert quirk == [0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9]  # s·E + l repeats indices when E != L
    with pytest.raises(ValueError, match="temperature_index"):
        step_index(0, 0, 4, 3, "other")


def test_sampling_probabilities_flatten_with_temperature():
    scores = [0.9, 0.5, 0.1]
    hot, cold = sampling_probabilities(scores, 100.0), sampling_probabilities(scores, 0.05)
    assert hot.sum() == pytest.approx(1) and cold.sum() == pytest.approx(1)
    assert hot.max() - hot.min() < 0.05  # nearly uniform
    assert cold[0] > 0.999  # nearly argmax
    # T = 1: proportional to the scores themselves
    assert sampling_probabilities(scores, 1.0) == pytest.approx(np.array(scores) / sum(scores))


def test_sampling_is_without_replacement_and_seeded():
    rng = np.random.default_rng(0)
    picked = sample_without_replacement(np.linspace(0.1, 1, 20), 15, 1.0, rng)
    assert len(set(picked)) == 15
    again = sample_without_replacement(np.linspace(0.1, 1, 20), 15, 1.0, np.random.default_rng(0))
    assert picked == again
    assert sorted(sample_without_replacement([0.5, 0.2], 5, 1.0, rng)) == [0, 1]  # K > n: all of them


# -- surrogate --------------------------------------------------------------------------------------------------


def _toy_score(codes: np.ndarray) -> float:
    """A learnable SYNTHETIC score: deeper taps and ReLU are better."""
    return float(0.3 + 0.08 * codes[:, 0].mean() + 0.1 * codes[:, 1].mean() - 0.1 * codes[:, 2].mean())


@pytest.mark.parametrize("encoding", ["one_hot", "raw_codes"])
def test_surrogate_learns_to_rank(encoding):
    rng = np.random.default_rng(0)
    archs = [SPACE.codes(a) for n in (1, 2) for a in random_architectures(SPACE, n, 40, rng)]
    scores = [_toy_score(c) for c in archs]
    import torch

    torch.manual_seed(0)
    surrogate = RecurrentSurrogate(SPACE.shape, encoding=encoding, embed_size=32, hidden_size=32, lr=1e-2)
    before = np.mean((surrogate.predict(archs) - scores) ** 2)
    surrogate.fit(archs, scores, epochs=150)
    after = np.mean((surrogate.predict(archs) - scores) ** 2)
    assert after < before / 5
    best, worst = np.array([[4, 2, 0]]), np.array([[0, 0, 1]])
    assert surrogate.predict([best])[0] > surrogate.predict([worst])[0]


def test_surrogate_input_sizes():
    assert RecurrentSurrogate(SPACE.shape).encode(np.zeros((2, 3, 3), int)).shape == (2, 3, 5 + 3 + 2)
    assert RecurrentSurrogate(SPACE.shape, encoding="raw_codes").encode(np.zeros((2, 3, 3), int)).shape == (2, 3, 3)


# -- candidates -----------------------------------------------------------------------------------------------------


def test_expand_first_step_appends_and_replaces():
    first = expand(SPACE, None, 0)
    assert len(first) == 30 and all(len(a) == 1 for a in first)
    two = expand(SPACE, first[:3], 1)
    assert len(two) == 3 * 30 and all(len(a) == 2 for a in two)
    replaced = expand(SPACE, [two[0]], 0)  # a later search iteration: layer 1 replaced, depth kept
    assert len(replaced) == 30 and all(len(a) == 2 and a[1] == two[0][1] for a in replaced)


def test_random_architectures_are_distinct_and_of_the_asked_depth():
    archs = random_architectures(SPACE, 3, 15, np.random.default_rng(1))
    assert len(set(archs)) == 15 and all(len(a) == 3 for a in archs)


# -- the loop ---------------------------------------------------------------------------------------------------------

SMALL = dict(iterations=2, max_layers=2, samples=4, top=3, surrogate={"encoding": "one_hot", "epochs": 5, "lr": 1e-3,
                                                                       "embed_size": 16, "hidden_size": 16})


class FakeTrainer:
    """A stand-in for training: a SYNTHETIC deterministic score per architecture; optionally dies after n calls."""

    def __init__(self, die_after: int | None = None):
        self.calls, self.die_after = 0, die_after

    def __call__(self, codes, seed, bank):
        if self.die_after is not None and self.calls >= self.die_after:
            raise KeyboardInterrupt
        self.calls += 1
        return Evaluation(score=_toy_score(codes), history=[_toy_score(codes)], seconds=0.0, steps=1)


def _search(tmp_path, strategy="mfas", trainer=None, **kw):
    settings = SearchSettings(strategy=strategy, **{**SMALL, **kw})
    header = {"strategy": strategy, "data": "toy", "seed": 0, "settings": vars(settings), "space": SPACE.describe()}
    state = SearchState.open(tmp_path, header)
    return Search(SPACE, settings, state, trainer or FakeTrainer(), seed=0, progress=lambda _: None), state


@pytest.mark.parametrize("strategy", ["mfas", "random"])
def test_search_budget_steps_and_top(tmp_path, strategy):
    search, state = _search(tmp_path, strategy)
    top = search.run()
    record = read_search_record(tmp_path)
    assert len(record["steps"]) == 4 and all(s["done"] for s in record["steps"])
    # first step trains all 30 one-layer architectures, every later step K = 4
    assert len(record["evaluations"]) == 30 + 3 * 4
    assert [len(s["train"]) for s in record["steps"]] == [30, 4, 4, 4]
    depths = [{len(t.split("|")) for t in s["train"]} for s in record["steps"]]
    assert depths == [{1}, {2}, {2}, {2}]
    scores = [t["score"] for t in top]
    assert len(top) == 3 and scores == sorted(scores, reverse=True)
    assert scores[0] == max(e["score"] for e in record["evaluations"])
    temps = [s["temperature"] for s in record["steps"]]
    assert temps == sorted(temps, reverse=True)


def test_mfas_later_steps_follow_the_surrogate(tmp_path):
    search, _ = _search(tmp_path, iterations=1, max_layers=3, samples=6)
    search.run()
    record = read_search_record(tmp_path)
    # the candidates of step 2 are the 6 sampled one-layer architectures × 30 appended layers
    assert record["steps"][1]["num_candidates"] == 6 * 30
    assert record["steps"][1]["train"][0].split(" | ")[0] in record["steps"][0]["sampled"]


def test_interrupted_search_resumes_to_the_same_result(tmp_path):
    full, _ = _search(tmp_path / "full")
    full.run()
    dying, state = _search(tmp_path / "resumed", trainer=FakeTrainer(die_after=33))
    with pytest.raises(KeyboardInterrupt):
        dying.run()
    assert len(read_search_record(tmp_path / "resumed")["evaluations"]) == 33  # nothing finished is lost
    again = FakeTrainer()
    resumed, _ = _search(tmp_path / "resumed", trainer=again)
    resumed.run()
    assert again.calls == 42 - 33  # only what was missing
    a, b = read_search_record(tmp_path / "full"), read_search_record(tmp_path / "resumed")
    assert [(e["arch"], e["score"]) for e in a["evaluations"]] == [(e["arch"], e["score"]) for e in b["evaluations"]]
    assert a["top"] == b["top"]


def test_resume_with_other_settings_is_refused(tmp_path):
    _search(tmp_path)[0].run()
    with pytest.raises(SearchStateError, match="different settings"):
        _search(tmp_path, samples=5)
