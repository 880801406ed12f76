"""The MFAS fusion search space (mfas.txt §3.1, Eqs. 1-2; IMPLEMENTATION-NOTES §3.1).

A fusion network of L layers is a vector of triplets γ_l = (γ^m_l, γ^n_l, γ^p_l): which tap of the first
modality (one of M), which tap of the second (one of N) and which non-linearity (one of P) layer l uses:

    h_1 = σ_{γ^p_1}(W_1 [x_{γ^m_1}; y_{γ^n_1}])                    (Eq. 2)
    h_l = σ_{γ^p_l}(W_l [x_{γ^m_l}; y_{γ^n_l}; h_{l-1}])            (Eq. 1)

so there are (M·N·P)^L architectures with L layers. Here a layer is named by its taps and non-linearity, and
an architecture has a readable string form, e.g. for AV-MNIST (first modality = spectrogram, M = 5 taps;
second = image, N = 3 taps; P = 2)::

    audio.conv3+image.conv2/relu | audio.conv5+image.conv3/sigmoid

`codes` gives the authors' representation: an (L, 3) integer array of 0-based indices (their surrogate reads
these raw integers; see `repro.search` for that QUIRK). Bad architectures raise `SearchSpaceError`, one line
naming what does not fit and what would.

Aliases. A tap name may be an *alias* of an encoder stage (`aliases={modality: {alias: stage}}`): a distinct
choice in the space that reads the same stage. MFAS's NTU space has one: the authors' 4th RGB feature is
layer4 after the network's own global average pool, which equals layer4 after the search's pooling, yet the
authors count it as a separate choice (4 × 4 × 2 per layer); `layer4_pooled` keeps those four codes distinct
(configs/backbone/ntu_resnet.yaml). `SearchSpace.stage_of` resolves a tap to the stage it reads.

It lives with the model (not under `repro.search`) because the found network (`mfas.MFASNet`) parses these strings
and models sit below the search in the import layers (tests/spine/test_layers.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from repro.config import ConfigError

NONLINEARITIES = ("relu", "sigmoid", "leaky_relu")  # the authors' codes 0, 1, 2
LAYER_SEPARATOR = " | "


class SearchSpaceError(ConfigError):
    """An architecture (or a search-space definition) that does not fit; the message is one line."""


@dataclass(frozen=True)
class FusionLayer:
    """One triplet γ_l: a tap of each modality and a non-linearity."""

    x_tap: str
    y_tap: str
    nonlinearity: str


Architecture = tuple[FusionLayer, ...]


@dataclass(frozen=True)
class SearchSpace:
    """Taps of the two modalities (first = the paper's x, M of them; second = y, N of them), the allowed
    non-linearities (P) and the largest number of fusion layers L."""

    x_modality: str
    y_modality: str
    x_taps: tuple[str, ...]
    y_taps: tuple[str, ...]
    nonlinearities: tuple[str, ...] = ("relu", "sigmoid")
    max_layers: int = 4
    aliases: tuple[tuple[str, str, str], ...] = ()  # (modality, alias tap, the encoder stage it reads)

    def __post_init__(self) -> None:
        if not self.x_taps or not self.y_taps:
            raise SearchSpaceError("a search space needs at least one tap per modality")
        unknown = [n for n in self.nonlinearities if n not in NONLINEARITIES]
        if unknown or not self.nonlinearities:
            raise SearchSpaceError(f"non-linearities {list(self.nonlinearities)}: choose from {list(NONLINEARITIES)}")
        if self.max_layers < 1:
            raise SearchSpaceError(f"max_layers must be >= 1, got {self.max_layers}")

    @classmethod
    def from_encoders(
        cls,
        encoders: Mapping[str, object],
        modalities: Sequence[str],
        taps: Mapping[str, Sequence[str] | None] | None = None,
        nonlinearities: Sequence[str] = ("relu", "sigmoid"),
        max_layers: int = 4,
        aliases: Mapping[str, Mapping[str, str] | None] | None = None,
    ) -> SearchSpace:
        """The space over two staged encoders; `taps[m]` restricts modality m's candidates (default: every stage
        and every alias); `aliases[m]` = {alias tap: stage} adds distinct choices reading an existing stage."""
        if len(modalities) != 2:
            raise SearchSpaceError(f"MFAS fuses two modalities; got {list(modalities)}")
        chosen, alias_rows = [], []
        for m in modalities:
            if m not in encoders:
                raise SearchSpaceError(f"no encoder for modality {m!r}; encoders are {sorted(encoders)}")
            stages = list(encoders[m].stage_names)
            own = dict((aliases or {}).get(m) or {})
            for alias, stage in own.items():
                if stage not in stages or alias in stages:
                    raise SearchSpaceError(f"alias {m}.{alias} -> {stage!r}: an alias must name a stage of the "
                                           f"encoder ({stages}) and must not be a stage name itself")
                alias_rows.append((m, str(alias), str(stage)))
            names = stages + list(own)
            wanted = list((taps or {}).get(m) or names)
            missing = [t for t in wanted if t not in names]
            if missing:
                raise SearchSpaceError(f"encoder {m!r} has no tap(s) {missing}; its taps are {names}")
            if len(set(wanted)) != len(wanted):
                raise SearchSpaceError(f"taps of {m!r} {wanted} repeat a name; give a repeated stage an alias "
                                       "(backbone.search_space.aliases) so that each choice has its own name")
            chosen.append(tuple(wanted))
        return cls(modalities[0], modalities[1], chosen[0], chosen[1], tuple(nonlinearities), max_layers,
                   tuple(alias_rows))

    def stage_of(self, modality: str, tap: str) -> str:
        """The encoder stage a tap reads (itself, or the stage an alias names)."""
        for m, alias, stage in self.aliases:
            if m == modality and alias == tap:
                return stage
        return tap

    def stage_indices(self, x_stage_names: Sequence[str], y_stage_names: Sequence[str]) -> tuple[list[int], list[int]]:
        """Positions, among each encoder's stages, of the stage every tap of the space reads (x taps, y taps)."""
        return ([list(x_stage_names).index(self.stage_of(self.x_modality, t)) for t in self.x_taps],
                [list(y_stage_names).index(self.stage_of(self.y_modality, t)) for t in self.y_taps])

    # -- size and enumeration --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(M, N, P)."""
        return len(self.x_taps), len(self.y_taps), len(self.nonlinearities)

    def size(self, num_layers: int) -> int:
        """(M·N·P)^L (mfas.txt §3.1)."""
        m, n, p = self.shape
        return (m * n * p) ** num_layers

    def layer_choices(self) -> list[FusionLayer]:
        return [FusionLayer(x, y, nl) for x, y, nl in itertools.product(self.x_taps, self.y_taps, self.nonlinearities)]

    def enumerate(self, num_layers: int) -> Iterator[Architecture]:
        """Every architecture with exactly `num_layers` layers, lazily, in code order."""
        self._check_depth(num_layers)
        return (tuple(layers) for layers in itertools.product(self.layer_choices(), repeat=num_layers))

    def describe(self) -> str:
        m, n, p = self.shape
        sizes = ", ".join(f"L={k}: {self.size(k):,}" for k in range(1, self.max_layers + 1))
        return (f"MFAS search space: {self.x_modality} taps {list(self.x_taps)} (M={m}) × {self.y_modality} taps "
                f"{list(self.y_taps)} (N={n}) × non-linearities {list(self.nonlinearities)} (P={p}); "
                f"(M·N·P)^L architectures — {sizes}")

    # -- validation, strings and codes ---------------------------------------------------------------------
    def _check_depth(self, num_layers: int) -> None:
        if not 1 <= num_layers <= self.max_layers:
            raise SearchSpaceError(f"an architecture has 1..{self.max_layers} fusion layers here, got {num_layers}")

    def validate(self, arch: Sequence[FusionLayer]) -> Architecture:
        self._check_depth(len(arch))
        for i, layer in enumerate(arch, 1):
            for tap, taps, modality in ((layer.x_tap, self.x_taps, self.x_modality),
                                        (layer.y_tap, self.y_taps, self.y_modality)):
                if tap not in taps:
                    raise SearchSpaceError(f"layer {i}: {modality} tap {tap!r} is not in the search space "
                                           f"(choose from {list(taps)})")
            if layer.nonlinearity not in self.nonlinearities:
                raise SearchSpaceError(f"layer {i}: non-linearity {layer.nonlinearity!r} is not in the search space "
                                       f"(choose from {list(self.nonlinearities)})")
        return tuple(arch)

    def format(self, arch: Sequence[FusionLayer]) -> str:
        return LAYER_SEPARATOR.join(
            f"{self.x_modality}.{l.x_tap}+{self.y_modality}.{l.y_tap}/{l.nonlinearity}" for l in self.validate(arch)
        )

    def parse(self, text: str) -> Architecture:
        """Inverse of `format`: 'x.tap+y.tap/nonlinearity | ...'."""
        example = f"{self.x_modality}.{self.x_taps[0]}+{self.y_modality}.{self.y_taps[0]}/{self.nonlinearities[0]}"
        layers = []
        for i, part in enumerate(p.strip() for p in str(text).split("|")):
            try:
                taps, nonlinearity = part.rsplit("/", 1)
                x, y = taps.split("+")
                (xm, xt), (ym, yt) = x.strip().split(".", 1), y.strip().split(".", 1)
            except ValueError:
                raise SearchSpaceError(f"layer {i + 1} {part!r} is not of the form {example!r}") from None
            if (xm, ym) != (self.x_modality, self.y_modality):
                raise SearchSpaceError(f"layer {i + 1} {part!r} names modalities {xm!r}+{ym!r}; expected "
                                       f"{self.x_modality!r}+{self.y_modality!r} (e.g. {example!r})")
            layers.append(FusionLayer(xt, yt, nonlinearity.strip()))
        return self.validate(layers)

    def codes(self, arch: Sequence[FusionLayer]) -> np.ndarray:
        """The authors' (L, 3) array of 0-based (x tap, y tap, non-linearity) indices."""
        arch = self.validate(arch)
        return np.array([[self.x_taps.index(l.x_tap), self.y_taps.index(l.y_tap),
                          self.nonlinearities.index(l.nonlinearity)] for l in arch], dtype=np.int64)

    def from_codes(self, codes) -> Architecture:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != 3:
            raise SearchSpaceError(f"architecture codes must have shape (L, 3), got {codes.shape}")
        m, n, p = self.shape
        layers = []
        for i, (a, b, c) in enumerate(codes.tolist(), 1):
            if not (0 <= a < m and 0 <= b < n and 0 <= c < p):
                raise SearchSpaceError(f"layer {i}: codes {(a, b, c)} outside the space's ranges "
                                       f"[0,{m}) × [0,{n}) × [0,{p})")
            layers.append(FusionLayer(self.x_taps[a], self.y_taps[b], self.nonlinearities[c]))
        return self.validate(layers)
