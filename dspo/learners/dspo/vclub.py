"""Return-agnostic learning: the vCLUB upper bound of I(z; r) with a discretised return (paper §3.1, App. D.1).

`q_theta(r_bin | z)` is a small classifier on the scalar safety signal z. Training alternates
(Cheng et al., 2020):
- theta step (:func:`theta_step`): maximise E log q_theta(r_i | z_i) with z *detached*, so q
  tracks p(r | z) (the condition, Eq. 3, under which the bound holds) and the discriminator
  is not moved by it;
- phi step (:func:`vclub_penalty`): the discriminator minimises L_D + mi_weight * I_vCLUB,
  the gradient flowing into z only; q's parameters are frozen for that pass so its `.grad`
  stays empty and no optimizer of the discriminator can move them.

Both take optional per-sample `weights` (summing to 1): the discriminator's batches are balanced
(half D^S, half D^U windows), so unweighted the demos would weigh ~40x their share of the data;
the paper's I(z; r) is over the data's distribution, and the weights move the estimate back to it
(importance weights of the batch's class balance, `DiscriminatorLearner.mixture_weights`).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from dspo.learners.nets import mlp


class ReturnBinClassifier(nn.Module):
    """q_theta(bin | z): scalar z in (0, 1) -> logits over `n_bins` return bins."""

    def __init__(self, n_bins: int, hidden: Sequence[int] = (32, 32)):
        super().__init__()
        self.n_bins = n_bins
        self.net = mlp(1, hidden, n_bins)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N] -> log-probabilities [N, n_bins]."""
        return torch.log_softmax(self.net(2.0 * z.reshape(-1, 1) - 1.0), dim=-1)


def return_bins(returns: np.ndarray | torch.Tensor, n_bins: int) -> torch.Tensor:
    """Equal-frequency (quantile) bins of the returns, as a long tensor in [0, n_bins).

    Quantile edges rather than equal-width ones, so every bin holds about the same number of
    episodes and a few outlier returns cannot leave most bins empty; tied returns share a bin
    (a bin may then be empty, which the classifier tolerates).
    """
    if n_bins < 2:
        raise ValueError(f"return_bins needs n_bins >= 2, got {n_bins}")
    r = np.asarray(returns.detach().cpu() if isinstance(returns, torch.Tensor) else returns, dtype=np.float64)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError(f"return_bins needs a non-empty 1-D array of returns, got shape {r.shape}")
    edges = np.quantile(r, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return torch.as_tensor(np.searchsorted(edges, r, side="right"), dtype=torch.long)


def _weights(n: int, weights: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device) if weights is None else weights.to(like)


def vclub_estimate(log_probs: torch.Tensor, bins: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """sum_i w_i log q(r_i|z_i) - sum_{i,j} w_i w_j log q(r_j|z_i) (paper Eq. 4), batched; w = 1/N by default.

    The double sum over all (i, j) pairs equals sum_k freq_w(bin k) * sum_i w_i log q(k|z_i), so
    it costs O(N K) instead of building the N x N matrix.
    """
    w = _weights(len(bins), weights, log_probs)
    positive = (w * log_probs.gather(1, bins.reshape(-1, 1)).squeeze(1)).sum()
    freq = torch.zeros(log_probs.shape[1], dtype=log_probs.dtype, device=log_probs.device).index_add_(0, bins, w)
    negative = ((w[:, None] * log_probs).sum(0) * freq).sum()
    return positive - negative


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Turn off requires_grad of a module's parameters for the duration of a block."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def theta_step(q: ReturnBinClassifier, optimizer: torch.optim.Optimizer, z: torch.Tensor,
               bins: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[float, float]:
    """One (weighted) maximum-likelihood step of q on (z detached, bin); returns (nll, bin accuracy)."""
    log_probs = q(z.detach())
    w = _weights(len(bins), weights, log_probs)
    loss = -(w * log_probs.gather(1, bins.reshape(-1, 1)).squeeze(1)).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), float((w * (log_probs.argmax(-1) == bins).to(w)).sum())


def vclub_penalty(q: ReturnBinClassifier, z: torch.Tensor, bins: torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """I_vCLUB(z; r) as a loss term for the phi step: differentiable in z, q frozen."""
    with frozen(q):
        return vclub_estimate(q(z), bins, weights)
