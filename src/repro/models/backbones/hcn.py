"""HCN, the NTU RGB+D skeleton network of MFAS and MSAF (mfas.txt §4, msaf.txt §5.3; IMPLEMENTATION-NOTES §1.4,
§3.1, §3.3), as a staged encoder.

Architecture read from MFAS's ``Skeleton`` (jperezrua/mfas ``models/central/ntu.py``, commit 2512d19), itself
Li et al.'s HCN (arXiv 1804.06055). The anita-hu/mfas fork that MSAF imports was not available to read; MSAF's
``msaf_ntu.py`` (anita-hu/MSAF, commit 4efa446) calls the same layers by the same names (``conv1``..``conv4m``,
``conv5``, ``conv6``, ``fc7``, ``fc8``, ``num_person``) with the same shapes. Input: the
authors' layout ``(B, C=3, T, V=25, M=2)`` — xyz coordinates, ``T`` frames (= ``window``, 32), 25 joints, 2
persons (the second all zeros when absent). Every person runs through the same weights:

    motion         x[:, :, 1:] - x[:, :, :-1], resized back to T frames by bilinear interpolation (align_corners
                   False) over the (T-1, V) grid, so only time is resampled
    position       conv1 1×1 (3→64) → ReLU → conv2 (3,1) (64→window) → swap joints and channels → (25, T, window)
                   → conv3 3×3 (25→32) → MaxPool 2 → conv4 3×3 (32→64) → Dropout2d → MaxPool 2
    motion branch  the same layers with their own weights (conv1m..conv4m) on the motion
    stage ``conv4``       concat(position, motion)                                   → (B, 128, 8, 8, M)
    stage ``conv5``       conv5 3×3 128→128 → ReLU → Dropout2d → MaxPool 2           → (B, 128, 4, 4, M)
    stage ``conv6``       conv6 3×3 128→256 → ReLU → Dropout2d → MaxPool 2           → (B, 256, 2, 2, M)
    stage ``person_max``  element-wise max over the two persons, flattened           → (B, 1024)
    stage ``fc7``         Linear(1024→512) → ReLU → Dropout                          → (B, 512)
    head                  fc8 Linear(512 → num_classes)

(sizes for window 32; conv2/conv3/conv4 have no non-linearity, as the authors' code). 1,062,652 parameters with
60 classes and window 32, as the authors' code (a test).

Taps. Per-person taps (``conv4``, ``conv5``, ``conv6``) keep the persons in a trailing dimension ``(B, C, H, W, M)``;
``tap[..., 0]`` and ``tap[..., 1]`` are the authors' per-person tensors. Where the authors' code reads them:

- MFAS search (``models/search/ntu_searchable.py``) fuses the last four entries of ``Skeleton.forward``'s hidden
  list: skeleton feature 0 = conv5 output, 1 = conv6 output (both max over persons), 2 = the flattened
  person-max of conv6 (``out7``, 1024 = 32·window), 3 = fc7 output (``out8``, 512) — our taps ``conv5``,
  ``conv6``, ``person_max``, ``fc7`` (``SEARCH_TAPS``, in that order). MFAS global-average-pools each of them
  *after* the max over persons, so ``pool`` here takes the max over the person dimension first, then the
  global average: the search's features exactly.
- MSAF (anita-hu/MSAF ``ntu_rgb_d/networks/msaf_ntu.py``): module 1 fuses conv5's output of person 0 and of
  person 1 (two 128-channel inputs: ``tap[..., 0]``, ``tap[..., 1]`` of ``conv5``), module 2 fuses ``fc7``
  (512, a 2-D tensor). The fused per-person maps go on to conv6 (``to_next`` of a replaced tap).
- MMTM (haamoon/mmtm ``mmtm.py: MMTNet``): module 0 gates conv5's person 0 only, module 1 the person-max of
  conv6 *before* flattening (``out6_max``, 256 channels), module 2 fc7.

Tap parts (``StagedEncoder.tap_parts``; a fusion point names them ``conv5/p0``, ``conv5/*``):
``conv4``, ``conv5``, ``conv6`` have the parts ``p0``, ``p1`` (the two persons, ``tap[..., 0]`` / ``tap[..., 1]``;
merged back by stacking); ``person_max`` has the part ``map``, the flattened vector viewed as the conv6-max map
(B, 256, h, w) the authors' MMTM gates (merged back by flattening — the same channel-major order as ``Flatten``).

Persons. Between stages the persons are folded into the batch (person-major: rows ``[p0 of every sample, p1 of
every sample]``); inside a per-person stage (``conv4``, ``conv5``, ``conv6``) the two persons run one after the other
through the shared layers, in batches of one person each, as the authors' loop does — so each person's Dropout2d
draws its own channel masks. Why the loop and not one call on the folded batch (the same function, outputs equal):
measured faster on the 2-core CPU: each conv's backward over the person-folded batch of 128 cost more per sample
than two calls of 64 (conv3 452 vs 310 ms per step); a train step at batch 64 went from 1.27 s (folded) to 1.02 s in
an A/B in one process, and runs at 0.97× the authors' loop (``make bench-ntu``: results/bench/ntu_models_cpu.json,
docs/ntu.md "Benchmarks").

QUIRK ``window=8`` (the authors' special case): conv5 has no MaxPool when the window is 8; kept as their code.
The authors' fc7 dropout is ``Dropout2d`` on a 2-D tensor, which old PyTorch applied element-wise: ``nn.Dropout``.

Weights: the authors' ``initial_model_weight`` — Xavier-uniform for every conv and linear weight (fan-in
``in·kh·kw``, fan-out ``out·kh·kw``: PyTorch's ``xavier_uniform_``), biases 0. Dropout p is the authors' ``--drpt``
(0.4 in their NTU training scripts).

Checkpoints. ``load_authors(encoder, path)`` reads a state dict saved from the authors' ``Skeleton`` (e.g. MFAS's
``skeleton_32frames_85.24``; a ``module.`` prefix from DataParallel is removed) under their key names
``conv1.0``, ``conv2``, ``conv3.0``, ``conv4.0``, ``conv1m.0`` … ``conv4m.0``, ``conv5.0``, ``conv6.0``, ``fc7.0``,
``fc8`` (``authors_key`` maps ours to theirs); ``HCN(pretrained=<path>)`` does the same at construction (the
backbone configs' ``encoders.skeleton.pretrained``). Strict: any missing, unexpected or wrongly shaped tensor is a
one-line ``ConfigError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import ConfigError
from repro.models.backbones.base import StagedEncoder, global_average
from repro.models.checkpoints import read_state_dict as read_weights

NUM_JOINTS = 25
NUM_PERSONS = 2
IN_CHANNELS = 3                   # x, y, z
WINDOW = 32                       # MFAS/MSAF `vid_len[1]`: skeleton frames after length normalisation
WIDTH = 64                        # HCN's `out_channel`
SEARCH_TAPS = ("conv5", "conv6", "person_max", "fc7")   # MFAS's skeleton features 0..3 (`skel_features[-4:]`)
PERSON_PARTS = ("p0", "p1")       # parts of the per-person taps conv4, conv5, conv6
MAP_PART = "map"                  # the part of person_max: the conv6-max map before flattening


def motion(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, V, M) -> frame differences resized back to T frames (the authors' bilinear resize over (T-1, V))."""
    b, c, t, v, m = x.shape
    diff = (x[:, :, 1:] - x[:, :, :-1]).permute(0, 1, 4, 2, 3).reshape(b, c * m, t - 1, v)
    diff = F.interpolate(diff, size=(t, v), mode="bilinear", align_corners=False)
    return diff.view(b, c, m, t, v).permute(0, 1, 3, 4, 2)


def fold_persons(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *dims, M) -> (M·B, C, *dims), person-major."""
    return x.movedim(-1, 0).flatten(0, 1)


def unfold_persons(x: torch.Tensor, persons: int = NUM_PERSONS) -> torch.Tensor:
    """(M·B, C, *dims) -> (B, C, *dims, M): the inverse of `fold_persons`."""
    return x.unflatten(0, (persons, -1)).movedim(0, -1)


def per_person(layers: nn.Module, folded: torch.Tensor, persons: int = NUM_PERSONS) -> torch.Tensor:
    """`layers` on each person's rows of a person-folded batch in turn (the authors' loop), folded back: equal to
    ``layers(folded)`` but measured faster on CPU (module docstring, "Persons")."""
    return torch.cat([layers(rows) for rows in folded.chunk(persons, dim=0)], dim=0)


class HCNBranch(nn.Module):
    """One HCN input branch (position or motion) up to conv4, on (N, 3, T, V) input (one person's rows)."""

    def __init__(self, window: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(IN_CHANNELS, WIDTH, kernel_size=1), nn.ReLU())
        self.conv2 = nn.Conv2d(WIDTH, window, kernel_size=(3, 1), padding=(1, 0))
        self.conv3 = nn.Sequential(nn.Conv2d(NUM_JOINTS, WIDTH // 2, kernel_size=3, padding=1), nn.MaxPool2d(2))
        self.conv4 = nn.Sequential(nn.Conv2d(WIDTH // 2, WIDTH, kernel_size=3, padding=1), nn.Dropout2d(dropout),
                                   nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # HCN's co-occurrence trick: after conv2 the joints become the channels, (N, V, T, window).
        out = self.conv2(self.conv1(x)).permute(0, 3, 2, 1).contiguous()
        return self.conv4(self.conv3(out))


class HCNStem(nn.Module):
    """Stage ``conv4``: motion, then both branches on one person after the other, concatenated; person-folded out."""

    def __init__(self, window: int, dropout: float):
        super().__init__()
        self.position = HCNBranch(window, dropout)
        self.motion = HCNBranch(window, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = motion(x)
        return torch.cat([torch.cat([self.position(x[..., p]), self.motion(moved[..., p])], dim=1)
                          for p in range(x.shape[-1])], dim=0)


class HCN(StagedEncoder):
    """MFAS's two-person HCN; taps ``conv4, conv5, conv6, person_max, fc7`` (see the module docstring)."""

    def __init__(self, num_classes: int = 60, window: int = WINDOW, dropout: float = 0.4,
                 pretrained: str | None = None):
        super().__init__()
        if window < 8 or window % 8:
            raise ValueError(f"HCN window {window} must be a multiple of 8 (the authors use 32, or 8 as a special "
                             "case); set the backbone's window to the skeleton length the data produces")
        self.window = int(window)
        flat = 4 * WIDTH * max((window // 16) ** 2, 1)
        self.stage_names = ["conv4", "conv5", "conv6", "person_max", "fc7"]
        self.stage_channels = [2 * WIDTH, 2 * WIDTH, 4 * WIDTH, flat, 8 * WIDTH]
        conv5 = [nn.Conv2d(2 * WIDTH, 2 * WIDTH, kernel_size=3, padding=1), nn.ReLU(), nn.Dropout2d(dropout)]
        if window != 8:  # QUIRK of the authors' code: no pooling at window 8, so that conv6's map stays 1×1
            conv5.append(nn.MaxPool2d(2))
        self.stages.extend([
            HCNStem(window, dropout),
            nn.Sequential(*conv5),
            nn.Sequential(nn.Conv2d(2 * WIDTH, 4 * WIDTH, kernel_size=3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
                          nn.MaxPool2d(2)),
            nn.Flatten(),
            nn.Sequential(nn.Linear(flat, 8 * WIDTH), nn.ReLU(), nn.Dropout(dropout)),
        ])
        self.head = nn.Linear(8 * WIDTH, num_classes)
        self.reset_parameters()
        self.pretrained = str(pretrained) if pretrained else None
        if pretrained:  # the authors' `skeleton_32frames_85.24` (their key names), strictly
            load_authors(self, pretrained)

    def reset_parameters(self) -> None:
        """The authors' `initial_model_weight`: Xavier-uniform weights, zero biases, on every conv and linear."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        expected = (IN_CHANNELS, self.window, NUM_JOINTS, NUM_PERSONS)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"HCN expects skeletons (B, {', '.join(map(str, expected))}) = (batch, xyz, frames, "
                             f"joints, persons), got {tuple(x.shape)}; set the skeleton window (data) and the "
                             "backbone's window to the same length")

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            self.check_input(x)
            return unfold_persons(self.stages[0](x))
        if i in (1, 2):  # per-person conv stages: shared weights, one person's rows at a time
            return unfold_persons(per_person(self.stages[i], x))
        return self.stages[i](x)

    def to_next(self, i: int, tap: torch.Tensor) -> torch.Tensor:
        if i in (0, 1):
            return fold_persons(tap)
        if i == 2:  # the authors' `torch.max(logits[0], logits[1])`: element-wise max of the two persons
            return tap.amax(dim=-1)
        return tap

    # -- tap parts: the persons of conv4..conv6, the un-flattened map of person_max ------------------------
    def tap_parts(self, i: int) -> tuple[str, ...]:
        if i in (0, 1, 2):
            return PERSON_PARTS
        return (MAP_PART,) if i == 3 else ()

    def part_channels(self, i: int, part: str) -> int:
        return self.stage_channels[2] if i == 3 else self.stage_channels[i]

    def split_tap(self, i: int, tap: torch.Tensor) -> dict[str, torch.Tensor]:
        if i in (0, 1, 2):
            return dict(zip(PERSON_PARTS, tap.unbind(dim=-1)))
        if i == 3:
            side = round((tap.shape[1] // self.stage_channels[2]) ** 0.5)
            return {MAP_PART: tap.view(tap.shape[0], self.stage_channels[2], side, side)}
        return super().split_tap(i, tap)

    def merge_tap(self, i: int, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        if i in (0, 1, 2):
            return torch.stack([parts[p] for p in PERSON_PARTS], dim=-1)
        if i == 3:
            return parts[MAP_PART].flatten(1)
        return super().merge_tap(i, parts)

    def pool(self, tap: torch.Tensor) -> torch.Tensor:
        """MFAS's features: a per-person tap is max-reduced over persons, then globally averaged."""
        if tap.dim() == 5:
            tap = tap.amax(dim=-1)
        return global_average(tap)


AUTHORS_PREFIX = {"stages.1.": "conv5.", "stages.2.": "conv6.", "stages.4.": "fc7.", "head.": "fc8."}
WEIGHTS_HINT = "give the path of a state dict saved from MFAS's models/central/ntu.py Skeleton (60 classes, window 32)"


def authors_key(key: str) -> str:
    """Our state-dict key -> the authors' `Skeleton` key (``stages.0.motion.conv3.0.weight`` -> ``conv3m.0.weight``)."""
    for branch, suffix in (("stages.0.position.", ""), ("stages.0.motion.", "m")):
        if key.startswith(branch):
            layer, rest = key.removeprefix(branch).split(".", 1)
            return f"{layer}{suffix}.{rest}"
    for ours, theirs in AUTHORS_PREFIX.items():
        if key.startswith(ours):
            return theirs + key.removeprefix(ours)
    raise KeyError(f"HCN has no authors' counterpart for {key!r}")


def authors_state_dict(encoder: HCN) -> dict[str, torch.Tensor]:
    """The encoder's weights under the authors' key names (what their checkpoints hold)."""
    return {authors_key(k): v for k, v in encoder.state_dict().items()}


def load_authors(encoder: HCN, path: str | Path) -> None:
    """Load an authors' `Skeleton` state dict into `encoder`, strictly (every tensor, every shape)."""
    path = Path(path)
    state = read_weights(path, "HCN weights", WEIGHTS_HINT)
    own = authors_state_dict(encoder)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError(f"{path} does not fit this HCN: {'; '.join(parts)}; {WEIGHTS_HINT}")
    with torch.no_grad():
        for key, ours in own.items():
            ours.copy_(state[key])
