"""CTC-aligned early-fusion LSTM: the EF-LSTM baseline of MulT / MICA on UNALIGNED sequences (MICA Tables 2–4,
mica.txt §4.3 "EF-LSTM"; MulT, Tsai et al., ACL 2019, §4 baselines and its released ``src/ctc.py`` /
``src/train.py``, IMPLEMENTATION-NOTES §4.1; CTC: Graves et al., ICML 2006).

EF-LSTM concatenates the modalities at every step, which needs one time axis. On the unaligned releases MulT first
learns a soft alignment of every other modality to the text's steps with a CTC module, then runs its baseline on
the pseudo-aligned sequences. What the released code does (read, not copied):

- `CTCAligner` (their ``CTCModule``): a 2-layer LSTM over the source frames outputs, per frame, scores over
  C = 1 + T_text classes (class 0 = blank, class j = text position j). Its hidden size IS C and its outputs are
  the scores (no linear layer; `hidden=None` here). A softmax over the classes gives p_t(c); the non-blank part,
  transposed, multiplies the source: ``aligned[j] = Σ_t p_t(j+1) · x_t`` -> (B, T_text, D_source). The weights
  are NOT renormalised over frames (an aligned step is a probability-weighted sum, not a mean), as released.
- The loss (their ``train.py``): CTC of the score sequence against the targets 1..T_text, warp-ctc ``CTCLoss()``
  (softmax applied inside, so ≡ ``F.ctc_loss`` on ``log_softmax`` of the same scores), summed over the batch
  (warp-ctc's default), audio→text plus vision→text, added with weight 1 to the task loss. Evaluation uses the
  aligners' outputs but no CTC term (their ``evaluate()`` returns the task criterion only).

Choices the papers and code leave open or that differ here (each a config key, configs/fusion/ctc_ef_lstm.yaml):

- Padding. The released code uses the PADDED lengths (every input length = T_source, every target = all
  T_text positions, pads included). Here the input length of a sample is its number of REAL source frames (from
  ``<modality>_mask``; the CMU releases left-pad, so the real frames are gathered to the front before
  ``F.ctc_loss``), the targets are the 1-based positions of the sample's REAL text steps, in order (left-padded
  text with L words: T−L+1..T), so pseudo-aligned step j lines up with text step j; padded source frames get zero
  weight in the weighted sum and padded text steps of the aligned output are zero. The aligner LSTM runs over the
  real frames only (packed, `MaskedLSTM`).
- Infeasible samples. CTC needs at least T_target frames here (the targets are distinct, so no blank is forced
  between them); a sample with fewer real source frames than real text steps (or none) has probability 0 and an
  infinite loss: ``zero_infinity=True`` makes its loss AND gradient 0, so it only trains through the task loss.
- `ctc_reduction`: "sum" over the batch (default, the released warp-ctc ``CTCLoss()``), "batch_mean" (sum/B), or
  "mean" (PyTorch's: each sample's loss divided by its target length, then averaged). The released code trains the
  aligners with their own Adam optimisers and separately clipped gradients; here one optimiser updates everything.
  The CTC term only reaches the aligners' parameters, so with Adam its scale matters against the task gradient that
  flows into the aligners, and against any global ``trainer.gradient_clip_val`` (the presets set none).
- `ctc_in_eval=False`: the CTC term is only added while training, so ``val/loss`` (checkpoint selection) is the
  task loss alone, as the released code selects on it. The alignment weights are in
  ``extras["alignment_<modality>"]`` (B, T_text, T_source).
- `hidden`: None = the released layout (LSTM width C, scores bounded to (−1, 1) by the LSTM's tanh, so a softmax
  over 51 classes never exceeds ≈ 0.13 per class: the alignment stays blurry); an int = LSTM of that width followed
  by Linear(C) (unbounded scores; not in the released code).
- `target_steps` (T_text, fixes C) must be known when the network is built: set per preset (MOSI/MOSEI 50,
  IEMOCAP 20). A batch with fewer text steps (SYNTHETIC fixtures) uses the first classes only; more is an error.
- The EF-LSTM after the alignment is `EarlyFusionLSTM` (early_late.py: concatenation, LSTM, MLP; no published
  sizes) over (text, aligned audio, aligned vision), reading the text's mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.net import NetOutput
from repro.models.sequence.early_late import EarlyFusionLSTM
from repro.models.sequence.recurrent import MaskedLSTM, front_order, real_lengths

BLANK = 0
CTC_REDUCTIONS = ("sum", "batch_mean", "mean")


class CTCAligner(nn.Module):
    """Soft alignment of a (B, T_s, D) source to `target_steps` target positions (MulT's ``CTCModule``).

    ``forward(x, mask, steps)`` -> ``(aligned (B, steps, D), scores (B, T_s, 1 + target_steps), weights
    (B, steps, T_s))``; `weights` = non-blank class probabilities of the real frames (0 at padded frames).
    """

    def __init__(self, in_features: int, target_steps: int, hidden: int | None = None, layers: int = 2):
        super().__init__()
        self.target_steps = int(target_steps)
        classes = self.target_steps + 1
        width = classes if hidden is None else int(hidden)
        self.lstm = MaskedLSTM(int(in_features), width, num_layers=int(layers))
        # Released layout: the LSTM's outputs are the class scores; otherwise a linear read-out.
        self.head = nn.Identity() if hidden is None else nn.Linear(width, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
        if steps > self.target_steps:
            raise ValueError(f"the target has {steps} steps but the CTC aligner was built for {self.target_steps}; "
                             "set fusion.net.target_steps to the text's padded length")
        outputs, _ = self.lstm(x, mask)
        scores = self.head(outputs)
        probs = torch.softmax(scores, dim=-1)[..., 1:1 + steps]  # drop the blank; positions 1..steps
        weights = (probs * mask.unsqueeze(-1).to(probs.dtype)).transpose(1, 2)
        return torch.bmm(weights, x), scores, weights


def ctc_alignment_loss(
    scores: torch.Tensor, source_mask: torch.Tensor, target_mask: torch.Tensor, reduction: str = "sum"
) -> torch.Tensor:
    """CTC loss of emitting, from the real source frames, the 1-based positions of the real target steps in order.

    `scores` (B, T_s, C) are the aligner's class scores; masks are (B, T_s) and (B, T_t) bool (True = real).
    Samples with fewer real frames than real target steps give 0 (``zero_infinity=True``), not inf/NaN.
    """
    if reduction not in CTC_REDUCTIONS:
        raise ValueError(f"ctc_reduction must be one of {CTC_REDUCTIONS}, got {reduction!r} (fusion.net.ctc_reduction)")
    source_mask, target_mask = source_mask.to(torch.bool), target_mask.to(torch.bool)
    # F.ctc_loss reads the first input_length frames: move every row's real frames to the front (left padding).
    order = front_order(source_mask)
    front = torch.gather(scores, 1, order.unsqueeze(-1).expand_as(scores))
    log_probs = F.log_softmax(front.float(), dim=-1).transpose(0, 1)  # (T_s, B, C); CTC wants float32
    targets = front_order(target_mask) + 1  # real target positions first, 1-based (0 is the blank)
    target_lengths = real_lengths(target_mask)
    losses = F.ctc_loss(log_probs, targets, real_lengths(source_mask), target_lengths, blank=BLANK,
                        reduction="none", zero_infinity=True)
    if reduction == "sum":
        return losses.sum()
    if reduction == "batch_mean":
        return losses.mean()
    return (losses / target_lengths.clamp(min=1).to(losses.dtype)).mean()


class CTCEarlyFusionLSTM(EarlyFusionLSTM):
    """EF-LSTM over the text and the other modalities CTC-aligned to the text's steps (module docstring)."""

    def __init__(
        self,
        encoders,
        num_classes: int,
        target_steps: int | None = None,
        target: str = "text",
        aligner_hidden: int | None = None,
        aligner_layers: int = 2,
        ctc_weight: float = 1.0,
        ctc_reduction: str = "sum",
        ctc_in_eval: bool = False,
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        mlp_hidden=(64,),
        dropout: float = 0.0,
        use_mask: bool = True,
    ):
        super().__init__(encoders, num_classes, hidden=hidden, layers=layers, bidirectional=bidirectional,
                         mlp_hidden=mlp_hidden, dropout=dropout, use_mask=use_mask)
        self.target = str(target)
        self.sources = [m for m in self.modalities if m != self.target]
        check_config(self.target, self.modalities, target_steps, ctc_weight, ctc_reduction)
        self.target_steps = int(target_steps)
        self.ctc_weight, self.ctc_reduction, self.ctc_in_eval = float(ctc_weight), ctc_reduction, bool(ctc_in_eval)
        self.aligners = nn.ModuleDict({
            m: CTCAligner(self.dims[m], self.target_steps, aligner_hidden, aligner_layers) for m in self.sources
        })

    def computes_ctc(self) -> bool:
        return self.ctc_weight > 0 and (self.training or self.ctc_in_eval)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        target_mask = masks[self.target]
        keep = target_mask.unsqueeze(-1)
        aligned, extras, ctc = {self.target: xs[self.target]}, {}, []
        for m in self.sources:
            out, scores, weights = self.aligners[m](xs[m], masks[m], xs[self.target].shape[1])
            aligned[m] = out * keep.to(out.dtype)  # padded text steps stay empty
            extras[f"alignment_{m}"] = weights
            if self.computes_ctc():
                ctc.append(ctc_alignment_loss(scores, masks[m], target_mask, self.ctc_reduction))
        joint = torch.cat([aligned[m] for m in self.modalities], dim=-1)
        _, last = self.lstm(joint, target_mask)
        aux = {"ctc": self.ctc_weight * torch.stack(ctc).sum()} if ctc else {}
        return NetOutput(logits=self.classifier(last), aux_losses=aux, extras=extras)


def check_config(target: str, modalities: list[str], target_steps, ctc_weight, ctc_reduction) -> None:
    """One-line ValueErrors for a configuration the CTC EF-LSTM cannot run."""
    if target not in modalities:
        raise ValueError(f"CTC EF-LSTM aligns the other modalities to fusion.net.target={target!r}, but the "
                         f"encoders are {modalities}; use a backbone with that modality or set fusion.net.target")
    if len(modalities) < 2:
        raise ValueError(f"CTC EF-LSTM needs at least one modality besides {target!r} to align, got {modalities}; "
                         "use fusion=unimodal_text for text alone")
    if target_steps is None or int(target_steps) < 1:
        raise ValueError(f"fusion.net.target_steps must be the {target!r} padded length (>= 1; MOSI/MOSEI 50, "
                         f"IEMOCAP 20), got {target_steps!r}; the data's preset sets it")
    if float(ctc_weight) < 0:
        raise ValueError(f"fusion.net.ctc_weight must be >= 0, got {ctc_weight}")
    if ctc_reduction not in CTC_REDUCTIONS:
        raise ValueError(f"fusion.net.ctc_reduction must be one of {CTC_REDUCTIONS}, got {ctc_reduction!r}")
