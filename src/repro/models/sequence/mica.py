"""MICA — Modality-Invariant Crossmodal Attention (Liang, Lin, Feng, Zhang, Lv, ICCV 2021, "Attention is not
Enough", mica.txt §3.4: backbone with the merging gate, marginal (MMD) and propagated element-level (PEA) alignment;
objective L = L_p + α L_m + β L_e; hyper-parameters Table 1; ablations Table 5). No official code exists
(IMPLEMENTATION-NOTES §4): built on `MulT` (mult.py), every choice the paper leaves open is listed here.

Backbone (`gate=True`): layer i runs all six crossmodal units CA_{s→t}^[i], then per target the two reinforced
streams are merged (§3.4):  G = σ(Z_{s1→t} W_1 + Z_{s2→t} W_2 + b),  Z_t^[i+1] = G ⊙ Z_{s1→t} + (1 − G) ⊙ Z_{s2→t}.
- b: the paper's b ∈ R^{T_t × d} is a per-position bias. Sequence lengths vary across data sets (and batches may
  be trimmed), so by default b is a (d,) bias shared by all steps; `gate_bias_steps={modality: T_max}` gives the
  paper's per-position bias (T_max, d), indexed by the absolute step 0..T−1 (longer inputs raise ValueError).
- Z_t^[i+1] is the query input of both units of target t at layer i+1, and (`merged_sources=True`, the reading of
  §3.4's per-layer z_s^[i]) also the key/value input of every unit whose SOURCE is t. `merged_sources=False` keeps
  MulT's fixed sources (every layer attends to the embedded source sequence).
- After the last layer (`memory_input="merged"`, default) the merged Z_t^[D] goes through a final LayerNorm into a
  d-wide self-attention memory encoder ("we then pass the reinforced sequences of each modality through a
  self-attention transformer and concatenate them"): the head reads 3d, not MulT's 6d. `memory_input="streams"`
  leaves the last layer unmerged and concatenates its two normalised streams (2d, as MulT). (Only with gate=True.)
`gate=False`: MulT's separate streams and fixed sources, exactly MulT's structure and parameters (Table 5/6 "w/o
gate" ablations), with the alignment losses still available.

Losses (`aux_losses`, only computed while training unless `align_in_eval`, and only for a non-zero weight):
- `mmd` = α · Σ_layers Σ_units mmd_loss(keys_s, queries_t) (mica_losses.py: heads folded into the features, the real
  elements of the batch pooled, default bandwidths from the data scale of ALL of them). `mmd_max_elements`
  (default 1024 = DEFAULT_MMD_MAX_ELEMENTS; NOT in the paper) bounds the O(n²) kernel cost: a side with more real
  elements than that (MOSEI audio/vision: n ≈ 12,000) is replaced by a uniform random draw of that many without
  replacement, fresh at every call, and the statistic is corrected (`population_sizes`) so that its expectation over
  the draws is EXACTLY l_hat_{s,t}, the paper's biased V-statistic on all real elements of the batch, with the same
  bandwidths: an unbiased estimate of it (more variance, the same mean loss and mean gradient). At MOSEI's shape
  one unit's MMD (forward + backward, 2 CPU cores) costs ≈ 4 s at n = 12,000, 0.55 s at 4096, 0.17 s at 2048 and
  0.04 s at 1024, so 1024 keeps the 36 units' MMD (6 layers x 6 units) near 1.5 s per step.
  `mmd_max_elements=None` computes the exact full-batch value.
- `pea` = β · Σ_layers Σ_units pea_loss(q, k, V) with W = pea_selection(attention, masks, τ) on the detached
  attention probabilities and V = W ∪ V^[i−1] (`propagate=True`) or V = W (Table 5 "w/o propagation").
  `pea_reduction="pairs"` (default) averages each sample's Σ V‖q − k‖² over its selected pairs; "sum" is Eq. 2's
  literal sum, ~1e7 at the unaligned MOSEI shape (τ·T_s·T_t·heads pairs), which β = 0.5 would make millions of times
  the task loss — the paper's results imply a normalised loss (a decision, not in the paper).
`align_every_layer=False` aligns only the last layer. With α = β = 0 no queries/keys/probabilities are exported.
`export_attention_layer = i` (attribute, default None) stores every unit's (B, H, T_t, T_s) attention of layer i in
`extras["attention_<t>_with_<s>"]` (Fig. 4). `extras["gate_<t>"]` holds the last merging gate G (B, T_t, d).
Cost: PEA is O(T_t·T_s) per unit, head and layer. `propagated_selection` computes the explicit probabilities
itself from the layer's queries/keys (the unit's own `probabilities`, same masks), selects exactly (`pea_selection`),
takes the union and the products V k, V^T q in ONE pass over chunks of samples (`selection_elements` attention
entries at a time), without gradient: the only batch-sized (B, H, T_t, T_s) tensor is the bool V kept for the next
layer, and autograd keeps only (B, H, T, d_k)-sized tensors for the loss. The explicit probabilities still cost
about as much as the attention's own forward pass. Layers whose queries/keys feed a loss are not
activation-checkpointed (`checkpoint_layers` then only saves memory in the other layers and the memory encoders).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.profiler import record_function

from repro.models.net import NetOutput
from repro.models.sequence.mica_losses import (
    DEFAULT_SELECTION_ELEMENTS,
    PEA_REDUCTIONS,
    SelectionProducts,
    gaussian_kernel_bandwidths,
    mmd_loss,
    pea_loss_from_products,
    pea_selection,
    selection_products,
)
from repro.models.sequence.mult import AttentionMask, MulT, MultiheadAttention, run_layer

MEMORY_INPUTS = ("merged", "streams")
DEFAULT_MMD_MAX_ELEMENTS = 1024  # per side and unit; see the module docstring ("Losses") for what it estimates


class MergeGate(nn.Module):
    """G = σ(Z_1 W_1 + Z_2 W_2 + b); returns G ⊙ Z_1 + (1 − G) ⊙ Z_2 and G. b is (d,) or per position (T_max, d)."""

    def __init__(self, d: int, bias_steps: int | None = None):
        super().__init__()
        self.first = nn.Linear(d, d, bias=False)
        self.second = nn.Linear(d, d, bias=False)
        self.bias = nn.Parameter(torch.zeros(d) if bias_steps is None else torch.zeros(int(bias_steps), d))

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bias = self.bias
        if bias.dim() == 2:
            steps = z1.shape[1]
            if steps > bias.shape[0]:
                raise ValueError(f"MICA gate has a per-position bias for {bias.shape[0]} steps, the input has "
                                 f"{steps}; raise fusion.net.gate_bias_steps for this modality")
            bias = bias[:steps]
        gate = torch.sigmoid(self.first(z1) + self.second(z2) + bias)
        return gate * z1 + (1 - gate) * z2, gate


def rows_of(mask: AttentionMask, rows: slice) -> AttentionMask:
    """The AttentionMask of samples `rows` (a shallow copy with the per-sample tensors sliced)."""
    part = copy.copy(mask)
    part.allowed = None if mask.allowed is None else mask.allowed[rows]
    part.empty_rows = None if mask.empty_rows is None else mask.empty_rows[rows]
    return part


def propagated_selection(attention: MultiheadAttention, queries: torch.Tensor, keys: torch.Tensor,
                         mask: AttentionMask, target_mask: torch.Tensor, source_mask: torch.Tensor, tau: float,
                         previous: torch.Tensor | None = None, max_elements: int = DEFAULT_SELECTION_ELEMENTS,
                         ) -> tuple[torch.Tensor, SelectionProducts]:
    """V^[i] = W^[i] ∪ V^[i−1] (previous None: V = W) of one unit as a bool (B, H, T_t, T_s), and its products.

    One fused pass over chunks of samples (at most max(`max_elements`, one sample) attention entries each): the
    explicit probabilities (the unit's own `MultiheadAttention.probabilities`, so the same masks and arithmetic as
    the attention), `pea_selection`, the union and `selection_products`, all without gradient. Only the bool V —
    needed by the next layer — is batch-sized; no (B, H, T_t, T_s) float tensor exists.
    """
    batch, heads, target_len, _ = queries.shape
    step = max(1, int(max_elements) // max(1, heads * target_len * keys.shape[2]))
    selection = torch.empty((batch, heads, target_len, keys.shape[2]), dtype=torch.bool, device=queries.device)
    parts = []
    with torch.no_grad():
        for start in range(0, batch, step):
            rows = slice(start, start + step)
            with record_function("pea.probabilities"):  # named ranges for `scripts/bench.py --profile`
                probabilities = attention.probabilities(queries[rows].detach(), keys[rows].detach(),
                                                        rows_of(mask, rows))
            with record_function("pea.selection"):
                selection[rows] = pea_selection(probabilities, target_mask[rows], source_mask[rows], tau,
                                                overwrite=True)
                del probabilities  # before the products' float copy of V
                if previous is not None:
                    selection[rows] |= previous[rows]
            with record_function("pea.products"):
                parts.append(selection_products(selection[rows], queries[rows], keys[rows], max_elements))
    return selection, SelectionProducts(*(torch.cat(tensors) for tensors in zip(*parts, strict=True)))


class MICA(MulT):
    selection_elements: int = DEFAULT_SELECTION_ELEMENTS  # attention entries per chunk of `propagated_selection`

    def __init__(
        self,
        encoders,
        num_classes: int,
        alpha: float = 0.8,
        beta: float = 0.5,
        tau: float = 0.3,
        propagate: bool = True,
        bandwidths=None,
        gate: bool = True,
        align_every_layer: bool = True,
        merged_sources: bool = True,
        memory_input: str = "merged",
        gate_bias_steps=None,
        mmd_max_elements: int | None = DEFAULT_MMD_MAX_ELEMENTS,
        align_in_eval: bool = False,
        pea_reduction: str = "pairs",
        **mult_config,
    ):
        super().__init__(encoders, num_classes, **mult_config)
        if memory_input not in MEMORY_INPUTS:
            raise ValueError(f"MICA memory_input must be one of {MEMORY_INPUTS}, got {memory_input!r} "
                             "(fusion.net.memory_input)")
        if gate and len(self.modalities) != 3:
            raise ValueError(f"MICA's merging gate merges the two streams of each target and needs exactly three "
                             f"modalities, got {self.modalities}; use gate=false or three encoders")
        if not 0.0 < float(tau) <= 1.0:
            raise ValueError(f"MICA tau (selection rate) must be in (0, 1], got {tau} (fusion.net.tau)")
        self.alpha, self.beta, self.tau = float(alpha), float(beta), float(tau)
        self.propagate, self.bandwidths = bool(propagate), (None if bandwidths is None else list(bandwidths))
        self.gated, self.align_every_layer = bool(gate), bool(align_every_layer)
        self.merged_sources, self.memory_input = bool(merged_sources), memory_input
        if mmd_max_elements is not None and int(mmd_max_elements) < 2:
            raise ValueError(f"MICA mmd_max_elements must be null or an int >= 2, got {mmd_max_elements} "
                             "(fusion.net.mmd_max_elements)")
        self.mmd_max_elements = None if mmd_max_elements is None else int(mmd_max_elements)
        self.align_in_eval = bool(align_in_eval)
        if pea_reduction not in PEA_REDUCTIONS:
            raise ValueError(f"MICA pea_reduction must be one of {PEA_REDUCTIONS}, got {pea_reduction!r} "
                             "(fusion.net.pea_reduction)")
        self.pea_reduction = pea_reduction
        self.export_attention_layer: int | None = None
        if self.gated:
            self.build_gates(gate_bias_steps or {})

    def build_gates(self, bias_steps) -> None:
        merged_out = self.memory_input == "merged"
        merging_layers = self.num_layers if merged_out else self.num_layers - 1
        self.gates = nn.ModuleList(
            nn.ModuleDict({t: MergeGate(self.d, bias_steps.get(t)) for t in self.modalities})
            for _ in range(merging_layers))
        if merged_out:  # the units' own final LayerNorms are replaced by one per merged target
            for stack in self.crossmodal.values():
                stack.norm = None
            self.merged_norms = nn.ModuleDict({t: nn.LayerNorm(self.d) for t in self.modalities})
            self.build_memory_and_head(width=self.d)

    # ---------------------------------------------------------------- alignment
    def aligning(self) -> bool:
        return (self.alpha > 0 or self.beta > 0) and (self.training or self.align_in_eval)

    def wants_details(self, layer: int) -> bool:
        aligned_layer = self.align_every_layer or layer == self.num_layers - 1
        return (self.aligning() and aligned_layer) or self.export_attention_layer == layer

    def real_elements(self, per_head: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, T, d_k) -> (n, H·d_k): the real elements of the batch, heads folded into the features."""
        return per_head.transpose(1, 2).flatten(2)[mask]

    def subsample(self, elements: torch.Tensor) -> torch.Tensor:
        """A uniform random draw without replacement of `mmd_max_elements` rows (all rows when fewer / None)."""
        limit = self.mmd_max_elements
        if limit is None or elements.shape[0] <= limit:
            return elements
        return elements[torch.randperm(elements.shape[0], device=elements.device)[:limit]]

    def marginal_loss(self, keys: torch.Tensor, queries: torch.Tensor, source_mask, target_mask) -> torch.Tensor:
        """l_hat_{s,t} of one unit on all real elements, or its unbiased subsample estimate (`mmd_max_elements`).

        The default bandwidths come from ALL real elements (closed form, O(n·d)), so the subsample estimate has
        exactly the full-batch kernel.
        """
        with record_function("mmd.forward"):
            keys, queries = self.real_elements(keys, source_mask), self.real_elements(queries, target_mask)
            bandwidths = self.bandwidths if self.bandwidths is not None else gaussian_kernel_bandwidths(keys, queries)
            sizes = (keys.shape[0], queries.shape[0])
            return mmd_loss(self.subsample(keys)[None], self.subsample(queries)[None], None, None, bandwidths,
                            population_sizes=sizes)

    def align(self, unit, info, masks, state, attention: MultiheadAttention, attention_mask: AttentionMask) -> None:
        """Add this unit's MMD / PEA terms to `state` (unweighted sums) and update its propagated selection."""
        t, s = unit
        if self.alpha > 0 and bool(masks[s].any()) and bool(masks[t].any()):
            state["mmd"] = state.get("mmd", 0.0) + self.marginal_loss(info["keys"], info["queries"], masks[s],
                                                                      masks[t])
        if self.beta > 0:
            previous = state["selections"].get(unit) if self.propagate else None
            selection, products = propagated_selection(attention, info["queries"], info["keys"], attention_mask,
                                                       masks[t], masks[s], self.tau, previous,
                                                       self.selection_elements)
            if self.propagate:
                state["selections"][unit] = selection
            state["pea"] = state.get("pea", 0.0) + pea_loss_from_products(info["queries"], info["keys"], products,
                                                                          self.pea_reduction)

    # ---------------------------------------------------------------- backbone
    def crossmodal_aligned(self, embedded, masks):
        """The crossmodal layers with gates and alignment -> (memory inputs per target, aux_losses, extras)."""
        units = self.units()
        streams = {u: self.embed_dropped(embedded[u[0]]) for u in units}
        sources = {u: (self.embed_dropped(embedded[u[1]]), self.embed_dropped(embedded[u[1]])) for u in units}
        attention_masks = {u: self.attention_mask(masks[u[1]], embedded[u[0]].shape[1]) for u in units}
        state, extras = {"selections": {}}, {}
        for i in range(self.num_layers):
            details = self.wants_details(i)
            probabilities = self.export_attention_layer == i  # PEA computes its own, chunked (propagated_selection)
            for u in units:
                layer = self.crossmodal[self.unit_name(u[1], u[0])].layers[i]
                if details:
                    streams[u], info = layer(streams[u], *sources[u], attention_masks[u], details, probabilities)
                else:
                    streams[u], info = run_layer(layer, streams[u], *sources[u], attention_masks[u],
                                                 self.checkpoint_layers), None
                if info is not None:
                    if self.aligning() and (self.align_every_layer or i == self.num_layers - 1):
                        self.align(u, info, masks, state, layer.attention, attention_masks[u])
                    if self.export_attention_layer == i:
                        extras[f"attention_{self.unit_name(u[1], u[0])}"] = info["attention"]
            if self.gated and i < len(self.gates):
                self.merge(i, streams, sources, extras)
        aux = {name: weight * state[name] for name, weight in (("mmd", self.alpha), ("pea", self.beta))
               if name in state}
        return self.fused(streams), aux, extras

    def merge(self, layer: int, streams, sources, extras) -> None:
        """Z_t^[i+1] = gate(Z_{s1→t}, Z_{s2→t}) feeds both units of t (and, merged_sources, those with source t)."""
        merged = {}
        for t in self.modalities:
            first, second = (u for u in self.units() if u[0] == t)
            merged[t], gate = self.gates[layer][t](streams[first], streams[second])
            extras[f"gate_{t}"] = gate
        for u in self.units():
            streams[u] = merged[u[0]]
            if self.merged_sources:
                sources[u] = (merged[u[1]], merged[u[1]])

    def fused(self, streams) -> dict[str, torch.Tensor]:
        if self.gated and self.memory_input == "merged":
            return {t: self.merged_norms[t](streams[next(u for u in self.units() if u[0] == t)])
                    for t in self.modalities}
        return {t: torch.cat([self.crossmodal[self.unit_name(s, t)].norm(streams[(t, s)])
                              for tt, s in self.units() if tt == t], dim=-1)
                for t in self.modalities}

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        fused, aux, extras = self.crossmodal_aligned(self.project(xs, masks), masks)
        logits = self.summarise(fused, masks)
        return NetOutput(logits=logits, aux_losses=aux, extras=extras)
