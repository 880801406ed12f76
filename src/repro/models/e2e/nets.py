"""FE2E and MESM: the fully end-to-end network and its sparse variant (mesm.txt §4.2–4.3; IMPLEMENTATION-NOTES
§5.2–5.3; the authors' MME2E and MME2E_Sparse).

Branches (each modality's logit vector):
  text   ALBERT [CLS] -> Linear (repro.models.e2e.text), under `encoders.text` (the optimiser's lr/10 group);
  video  per face crop a CNN (FE2E: dense, repro.models.e2e.cnn; MESM: dense low level + text-queried sparse blocks,
  audio  repro.models.e2e.sparse) -> flatten -> projection -> CLS transformer per utterance -> Linear
         (repro.models.e2e.sequence).
Fusion: the stacked logit vectors (B, classes, n_modalities) -> Linear(n_modalities -> 1, bias=False) (the authors'
`weighted_fusion`; with one modality its logits are returned as they are). `modalities` picks a subset for the T/A/V
ablation (mesm.txt Table 5); MESM needs text (its attention query).

Batch (the raw readers' collate): `video` (ΣF, 3, 48, 48) + `video_counts` (B,), `audio` (ΣC, 1, 128, 32) +
`audio_counts` (B,), `text` (B, L) ids + `text_mask` (B, L). The output's extras: `feature_flops` (B,) — conv
multiply-adds of the visual and audio CNNs per sample, the paper's FLOP convention (repro.models.e2e.flops) —,
`modality_logits` (B, n_modalities, classes), and for MESM per modality m and block b `kept/<m>/<b>` (ΣF, H_b, W_b)
bool kept sites and `attention/<m>/<b>` the attention probabilities (the figures' input).

Wall time (issue 16: "the measured wall time beside the FLOPs, dense vs sparse, on the same batch"): in eval mode the
frame CNNs are timed, `feature_seconds` (a scalar: this batch, all frame modalities; CUDA synchronised around each
call). With `time_dense_reference: true` MESM also times the dense CNN it replaces — its own weights, the sparse blocks
as FE2E's dense VggBlocks + pools (`SparseFrameCNN.dense_reference`) — on the same frames, alternately right after and
right before, as `dense_feature_seconds`; FE2E's CNN is dense, so there it is the same measurement. Not measured in
training (autograd would be timed too); never used by the loss. Tables 3/4 turn both into ms per sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from repro.models.e2e.cnn import DenseFrameCNN, FrameSpec
from repro.models.e2e.flops import dense_macs, per_sample
from repro.models.e2e.sequence import FrameSequenceHead, check_counts, frame_owner
from repro.models.e2e.sparse import SparseFrameCNN
from repro.models.e2e.text import AlbertText, TextClassifier
from repro.models.net import FusionNet, NetOutput

MODALITY_ORDER = ("text", "audio", "video")


def timed(device: torch.device, fn, *args):
    """`fn(*args)` and its wall time in seconds. On a CUDA `device` the queue is drained before and after, so that the
    kernels count."""
    sync = device.type == "cuda"
    if sync:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn(*args)
    if sync:
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def chosen_modalities(encoders: Mapping[str, nn.Module], modalities: Sequence[str] | None) -> list[str]:
    names = [m for m in MODALITY_ORDER if m in encoders] if modalities is None else [str(m) for m in modalities]
    unknown = [m for m in names if m not in encoders]
    if unknown or not names:
        raise ValueError(f"fusion.net.modalities {names} must be a non-empty subset of the backbone's encoders "
                         f"{sorted(encoders)}")
    for m in names:
        expected = AlbertText if m == "text" else FrameSpec
        if not isinstance(encoders[m], expected):
            raise TypeError(f"encoder {m!r} is {type(encoders[m]).__name__}, expected {expected.__name__} "
                            "(use backbone=iemocap_raw or mosei_raw)")
    return names


class FrameBranch(nn.Module):
    """A frame modality's CNN + sequence head; `cnn` is dense (FE2E) or sparse (MESM)."""

    def __init__(self, spec: FrameSpec, cnn: nn.Module, num_classes: int, head: Mapping):
        super().__init__()
        self.spec, self.cnn = spec, cnn
        self.head = FrameSequenceHead(spec.feature_shape(), num_classes, **head)


class EndToEndNet(FusionNet):
    """What FE2E and MESM share: branches, fusion, inputs, extras. Subclasses build `frame_cnn`."""

    def __init__(self, encoders, num_classes: int, modalities: Sequence[str] | None = None, trans_dim: int = 64,
                 trans_layers: int = 4, trans_heads: int = 4, trans_ffn: int = 2048, trans_dropout: float = 0.1,
                 flatten_hidden: int = 1024, time_dense_reference: bool = False):
        names = chosen_modalities(encoders, modalities)
        head = {"trans_dim": int(trans_dim), "layers": int(trans_layers), "heads": int(trans_heads),
                "ffn": int(trans_ffn), "dropout": float(trans_dropout), "hidden": int(flatten_hidden)}
        text_dim = encoders["text"].hidden_size if "text" in encoders else 0
        branches = {m: (TextClassifier(encoders[m], num_classes) if m == "text"
                        else FrameBranch(encoders[m], self.frame_cnn(encoders[m], text_dim), num_classes, head))
                    for m in names}
        super().__init__(branches, num_classes)
        self.fusion = nn.Linear(len(names), 1, bias=False) if len(names) > 1 else None
        self.time_dense_reference, self._dense_first = bool(time_dense_reference), False

    def frame_cnn(self, spec: FrameSpec, text_dim: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def frame_features(self, m: str, frames, counts, text_cls, extras) -> tuple[torch.Tensor, torch.Tensor]:
        """(ΣF, C, h, w) feature maps and (ΣF,) conv MACs per frame of one frame modality."""
        raise NotImplementedError  # pragma: no cover - abstract

    def dense_reference(self, m: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The dense CNN to time beside modality m's own on the same frames; None when the own CNN is dense."""
        raise NotImplementedError  # pragma: no cover - abstract

    def timed_features(self, m: str, frames, counts, text_cls, extras, seconds: dict[str, float] | None):
        """`frame_features`, adding its wall time (and the dense reference's) to `seconds` unless that is None."""
        if seconds is None:
            return self.frame_features(m, frames, counts, text_cls, extras)
        dense = self.dense_reference(m) if self.time_dense_reference else None
        # the dense reference runs first on every other batch, so that neither side always finds the caches warm
        if dense is not None and self._dense_first:
            seconds["dense_feature_seconds"] += timed(frames.device, dense, frames)[1]
        out, took = timed(frames.device, self.frame_features, m, frames, counts, text_cls, extras)
        seconds["feature_seconds"] += took
        if dense is None:
            seconds["dense_feature_seconds"] += took  # the network's own CNN is the dense one
        elif not self._dense_first:
            seconds["dense_feature_seconds"] += timed(frames.device, dense, frames)[1]
        return out

    def forward(self, batch: Mapping[str, torch.Tensor]) -> NetOutput:
        logits, extras = {}, {}
        text_cls = None
        if "text" in self.encoders:
            text_cls, logits["text"] = self.encoders["text"](batch["text"], batch.get("text_mask"))
        flops = None
        seconds = None if self.training else {"feature_seconds": 0.0, "dense_feature_seconds": 0.0}
        for m in self.modalities:
            if m == "text":
                continue
            frames = batch[m]
            counts = check_counts(frames, batch[f"{m}_counts"], m)
            maps, macs = self.timed_features(m, frames, counts, text_cls, extras, seconds)
            logits[m] = self.encoders[m].head(maps, counts)
            sample_macs = per_sample(macs.float(), frame_owner(counts), counts.numel())
            flops = sample_macs if flops is None else flops + sample_macs
        stacked = torch.stack([logits[m] for m in self.modalities], dim=-1)   # (B, classes, n)
        fused = stacked[..., 0] if self.fusion is None else self.fusion(stacked).squeeze(-1)
        extras["modality_logits"] = stacked.transpose(1, 2)
        if flops is not None:
            extras["feature_flops"] = flops
        if flops is not None and seconds is not None:
            self._dense_first = not self._dense_first
            if not self.time_dense_reference:
                del seconds["dense_feature_seconds"]
            extras.update({k: torch.tensor(v, dtype=torch.float64) for k, v in seconds.items()})
        return NetOutput(logits=fused, extras=extras)


class FE2E(EndToEndNet):
    """Fully end-to-end model (mesm.txt §4.2): dense per-frame CNNs."""

    def frame_cnn(self, spec: FrameSpec, text_dim: int) -> nn.Module:
        return DenseFrameCNN(spec)

    def frame_features(self, m, frames, counts, text_cls, extras):
        branch = self.encoders[m]
        macs = torch.full((frames.shape[0],), float(dense_macs(branch.spec)), device=frames.device)
        return branch.cnn(frames), macs

    def dense_reference(self, m):
        return None


class MESM(EndToEndNet):
    """Multimodal end-to-end sparse model (mesm.txt §4.3): text-queried sparse CNN blocks at top-p `top_p`."""

    def __init__(self, encoders, num_classes: int, top_p: float = 0.7, attention_k: Sequence[int] = (64, 128, 256),
                 weight_by_attention: bool = False, quirk_stage0_row_order: bool = False, **kwargs):
        self.sparse_options = {"top_p": float(top_p), "attention_k": [int(k) for k in attention_k],
                               "weight_by_attention": bool(weight_by_attention),
                               "quirk_stage0_row_order": bool(quirk_stage0_row_order)}
        super().__init__(encoders, num_classes, **kwargs)
        if "text" not in self.encoders:
            raise ValueError(f"MESM needs the text modality (its attention query), got modalities {self.modalities}; "
                             "use fusion=fe2e for the A / V / AV rows")

    def frame_cnn(self, spec: FrameSpec, text_dim: int) -> nn.Module:
        return SparseFrameCNN(spec, text_dim, **self.sparse_options)

    def frame_features(self, m, frames, counts, text_cls, extras):
        branch = self.encoders[m]
        queries = text_cls[frame_owner(counts)]
        maps, trace = branch.cnn(frames, queries)
        for b, (kept, attention) in enumerate(zip(trace.kept, trace.attention)):
            extras[f"kept/{m}/{b}"], extras[f"attention/{m}/{b}"] = kept, attention
        return maps, trace.macs

    def dense_reference(self, m):
        return self.encoders[m].cnn.dense_reference
