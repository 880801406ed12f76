"""Late (decision-level) fusion: each encoder gives class scores, the scores are combined.

- ``LateAverageNet`` — "Averaging" (MSAF T1, late): the mean of the per-modality softmax probabilities,
  p = (1/M) sum_m softmax(z_m) (score averaging, the sum rule of two-stream networks, Simonyan & Zisserman
  2014 §3 / 6). Returned logits are log p, so softmax(logits) = p and the task's cross-entropy on them is
  the NLL of the averaged prediction. ``space='logits'`` averages the logits instead (a common variant;
  softmax of mean logits is a normalised geometric mean of the probabilities).
- ``LateProductNet`` — "Multiplication" (MSAF T1, late): the product of the per-modality softmax
  probabilities, renormalised; logits = log_softmax(sum_m log_softmax(z_m)) = log of the normalised product.
- ``MultiplicativeCombinationNet`` — "Multiplicative, beta=0.3" (MSAF T1), Liu, Li, Xu, Natarajan 2018,
  "Learn to Combine Modalities in Multimodal Deep Learning", §3.1 (multiplicative combination layer). Each
  modality is trained with its own cross-entropy, down-weighted where the *other* modalities are already
  confident on the true class y:

      L = - sum_m  q_m^{beta / (M - 1)} * log p_m^y,      q_m = prod_{j != m} (1 - p_j^y),

  with q_m treated as a constant (no gradient flows through the weights; the paper's Eq. for L_mul).
  The loss is averaged over the batch. Prediction: the combined probabilities, by default the mean of the
  per-modality probabilities (``predict='mean'``; ``'product'`` gives the normalised product). Neither the
  MSAF paper nor its code (which has no baseline code, IMPLEMENTATION-NOTES §1) states how the modality
  predictions are combined at test time, so the rule is a named switch here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from repro.models.net import LateFusionNet


def _stack(logits: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(logits.values()), dim=1)  # (B, M, K)


def log_mean_probs(stacked_logits: torch.Tensor) -> torch.Tensor:
    """log((1/M) sum_m softmax(z_m)) computed stably; stacked_logits (B, M, K)."""
    m = stacked_logits.shape[1]
    return torch.logsumexp(F.log_softmax(stacked_logits, dim=-1), dim=1) - math.log(m)


def log_normalised_product(stacked_logits: torch.Tensor) -> torch.Tensor:
    """log of prod_m softmax(z_m), renormalised over classes; stacked_logits (B, M, K)."""
    return F.log_softmax(F.log_softmax(stacked_logits, dim=-1).sum(dim=1), dim=-1)


class LateAverageNet(LateFusionNet):
    def __init__(self, encoders, num_classes: int, space: str = "probs"):
        super().__init__(encoders, num_classes)
        if space not in ("probs", "logits"):
            raise ValueError(f"late averaging space must be 'probs' or 'logits', got {space!r}")
        self.space = space

    def combine(self, logits):
        stacked = _stack(logits)
        if self.space == "logits":
            return stacked.mean(dim=1)
        return log_mean_probs(stacked)


class LateProductNet(LateFusionNet):
    def combine(self, logits):
        return log_normalised_product(_stack(logits))


class MultiplicativeCombinationNet(LateFusionNet):
    def __init__(self, encoders, num_classes: int, beta: float = 0.3, predict: str = "mean"):
        super().__init__(encoders, num_classes)
        if predict not in ("mean", "product"):
            raise ValueError(f"predict must be 'mean' or 'product', got {predict!r}")
        self.beta = float(beta)
        self.predict = predict

    def combine(self, logits):
        stacked = _stack(logits)
        return log_mean_probs(stacked) if self.predict == "mean" else log_normalised_product(stacked)

    def multiplicative_loss(self, modality_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L of Liu et al. 2018 §3.1 for (B, M, K) logits and (B,) class targets, averaged over the batch."""
        if target.dim() != 1 or target.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
            raise ValueError("the multiplicative combination loss needs single-label class indices (B,)")
        log_p = F.log_softmax(modality_logits, dim=-1)
        log_p_y = log_p.gather(2, target.view(-1, 1, 1).expand(-1, log_p.shape[1], 1)).squeeze(2)  # (B, M)
        m = log_p_y.shape[1]
        if m == 1:
            return -log_p_y.mean()
        with torch.no_grad():
            one_minus = 1.0 - log_p_y.exp()  # (B, M)
            # q_m = prod_{j != m} (1 - p_j^y): product over all modalities with the m-th factor replaced by 1.
            q = torch.stack(
                [torch.cat([one_minus[:, :i], one_minus[:, i + 1 :]], dim=1).prod(dim=1) for i in range(m)],
                dim=1,
            )
            weight = q.clamp_min(0.0) ** (self.beta / (m - 1))
        return -(weight * log_p_y).sum(dim=1).mean()

    def compute_loss(self, out, target, criterion):
        # The criterion is replaced by the method's own loss (Liu et al. 2018); auxiliary losses still add.
        parts = {"task": self.multiplicative_loss(out.extras["modality_logits"], target)}
        parts.update(out.aux_losses)
        return torch.stack(list(parts.values())).sum(), parts
