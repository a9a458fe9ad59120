"""SafetyTransformer (paper §3.1, Fig. 2) and the MLP backbone of the Fig. 4 ablation.

Both map a window of a trajectory -- *normalized* obs [B, T, obs_dim], actions [B, T, act_dim],
step indices within the episode [B, T] (long) and a validity mask [B, T] (bool, padding
False, always right-padded) -- to the pre-sigmoid logit of z_tau [B]. Returning the logit
keeps the BCE of L_D numerically stable; :meth:`z` gives the signal itself. Inputs are
normalized by the GaussianNormalizer stored beside the weights in the checkpoint.

Long trajectories: episodes run to 1000 steps (2000 tokens), too long for attention on a
CPU and too few (a dozen demos) to train on whole. Training therefore samples random
windows of `context_len` steps, many per episode; at labeling an episode is covered by
non-overlapping windows starting at 0, L, 2L, ..., the last one aligned to the episode's end
(so every window is full when the episode has >= L steps, as in training), and the episode's
score is sigmoid(mean of the window *logits*) -- the paper's sigmoid(mean_t z_t) with the
mean taken window by window (see `dspo.learners.dspo.discriminator.score_episodes`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dspo.learners.nets import MAX_TIMESTEP, mlp



def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of `values` [B, T] counting only mask==True entries."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


class PreferenceAttention(nn.Module):
    """Preference-Transformer head: z_t = sum_s softmax_s(q_t . k_s) v_s over the valid steps s.

    k_t = W_k x_t + b_k, q_t = W_q x_t + b_q (size pref_dim), v_t = w_v . x_t + b_v (scalar).
    The scores are scaled by 1/sqrt(pref_dim) (a reparametrisation of W_q, standard for
    attention) so the softmax is not saturated at initialisation.
    """

    def __init__(self, d_model: int, pref_dim: int):
        super().__init__()
        self.key = nn.Linear(d_model, pref_dim)
        self.query = nn.Linear(d_model, pref_dim)
        self.value = nn.Linear(d_model, 1)
        self.scale = 1.0 / math.sqrt(pref_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, d], mask [B, T] -> z_t [B, T]."""
        scores = self.query(x) @ self.key(x).transpose(1, 2) * self.scale  # [B, T(t), T(s)]
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        return (torch.softmax(scores, dim=-1) @ self.value(x)).squeeze(-1)


class SafetyTransformer(nn.Module):
    """Causal GPT over interleaved (s_1, a_1, s_2, a_2, ...) tokens + preference attention head."""

    def __init__(self, obs_dim: int, act_dim: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 context_len: int = 50, dropout: float = 0.1, pref_dim: int = 64, max_timestep: int = MAX_TIMESTEP):
        super().__init__()
        self.obs_dim, self.act_dim, self.context_len, self.max_timestep = obs_dim, act_dim, context_len, max_timestep
        self.embed_obs = nn.Linear(obs_dim, d_model)
        self.embed_act = nn.Linear(act_dim, d_model)
        self.embed_time = nn.Embedding(max_timestep, d_model)
        self.embed_drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.gpt = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = PreferenceAttention(d_model, pref_dim)

    def encode(self, obs: torch.Tensor, act: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-step outputs x_t [B, T, d_model], read at the action tokens (x_t sees s_1..a_t only)."""
        batch, steps, _ = obs.shape
        time = self.embed_time(timesteps.clamp(0, self.max_timestep - 1))
        tokens = torch.stack([self.embed_obs(obs) + time, self.embed_act(act) + time], dim=2)
        tokens = self.embed_drop(tokens.reshape(batch, 2 * steps, -1))
        causal = nn.Transformer.generate_square_subsequent_mask(2 * steps, device=obs.device, dtype=tokens.dtype)
        # Right padding only: a valid token never attends to a padded one, so no key-padding mask.
        hidden = self.gpt(tokens, mask=causal, is_causal=True)
        return self.ln_f(hidden[:, 1::2])

    def forward(self, obs: torch.Tensor, act: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """Logit of z_tau [B]: mean over valid steps of the head's z_t."""
        return masked_mean(self.head(self.encode(obs, act, timesteps), mask), mask)

    def z(self, obs, act, timesteps, mask) -> torch.Tensor:
        return torch.sigmoid(self(obs, act, timesteps, mask))


class MLPDiscriminator(nn.Module):
    """Fig. 4 ablation: a per-step MLP on (s, a) -> scalar, mean over valid steps -> logit."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.0,
                 context_len: int = 50):
        super().__init__()
        self.obs_dim, self.act_dim, self.context_len = obs_dim, act_dim, context_len
        self.net = mlp(obs_dim + act_dim, hidden, 1, dropout)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.net(torch.cat([obs, act], dim=-1)).squeeze(-1), mask)

    def z(self, obs, act, timesteps, mask) -> torch.Tensor:
        return torch.sigmoid(self(obs, act, timesteps, mask))


def build_discriminator(cfg, obs_dim: int, act_dim: int) -> nn.Module:
    """The discriminator named by `cfg.backbone` ("transformer" | "mlp"); cfg is a DiscConfig."""
    if cfg.backbone == "transformer":
        return SafetyTransformer(obs_dim, act_dim, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.context_len,
                                 cfg.dropout, cfg.pref_dim)
    if cfg.backbone == "mlp":
        return MLPDiscriminator(obs_dim, act_dim, cfg.mlp_hidden, cfg.dropout, cfg.context_len)
    raise ValueError(f"unknown discriminator backbone {cfg.backbone!r}; expected 'transformer' or 'mlp'")


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
