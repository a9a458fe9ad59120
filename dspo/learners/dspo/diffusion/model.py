"""Temporal 1-D U-Net: the ε-network of DSPO's conditional trajectory diffusion (paper §3.2, Eq. 6).

Diffuser / Decision Diffuser style: a segment x of shape [B, H, D] (H steps of D = obs_dim +
act_dim features) is treated as a D-channel 1-D signal over time. Residual Conv1d blocks
(GroupNorm, Mish) go down and back up the time axis with skip connections; every block is
FiLM-modulated (per-channel scale and shift) by an embedding of the diffusion timestep t and of
the condition (r, z) = (normalized trajectory return, safety signal).

Classifier-free guidance: when a sample's condition is dropped, its (r, z) embedding is
replaced by a *learned* null embedding, so one network gives both ε(x, t, r, z) and ε(x, t, ∅).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """Transformer-style sinusoidal embedding of the (integer) diffusion timestep."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


def conv_block(c_in: int, c_out: int, kernel: int = 5) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(8, c_out), nn.Mish())


class ResidualTemporalBlock(nn.Module):
    """conv block -> FiLM(emb) -> conv block, plus a (1x1 conv) residual path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.block0 = conv_block(c_in, c_out)
        self.block1 = conv_block(c_out, c_out)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(emb_dim, 2 * c_out))
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb).unsqueeze(-1).chunk(2, dim=1)
        h = self.block0(x) * (1 + scale) + shift
        return self.block1(h) + self.residual(x)


class TemporalUnet(nn.Module):
    """ε̂(x, t, r, z) for segments x [B, H, D]; `drop_mask` [B] (True = condition dropped)."""

    def __init__(self, transition_dim: int, horizon: int, dim: int = 32, dim_mults: Sequence[int] = (1, 2)):
        super().__init__()
        if dim % 8 or dim < 8:
            raise ValueError(f"TemporalUnet: dim={dim} must be a positive multiple of 8 (GroupNorm with 8 groups)")
        if horizon % 2 ** (len(dim_mults) - 1):
            raise ValueError(f"TemporalUnet: horizon={horizon} must be divisible by 2^(len(dim_mults)-1)="
                             f"{2 ** (len(dim_mults) - 1)} (one halving per down level)")
        self.transition_dim, self.horizon, self.dim, self.dim_mults = transition_dim, horizon, dim, list(dim_mults)
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, 4 * dim), nn.Mish(),
                                      nn.Linear(4 * dim, dim))
        self.cond_mlp = nn.Sequential(nn.Linear(2, dim), nn.Mish(), nn.Linear(dim, dim))
        self.null_cond = nn.Parameter(torch.randn(dim) * 0.02)  # learned "no condition" embedding
        emb_dim = 2 * dim

        widths = [transition_dim] + [dim * m for m in dim_mults]
        pairs = list(zip(widths[:-1], widths[1:]))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResidualTemporalBlock(c_in, c_out, emb_dim), ResidualTemporalBlock(c_out, c_out, emb_dim),
                nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1)]))
        mid = widths[-1]
        self.mid1, self.mid2 = ResidualTemporalBlock(mid, mid, emb_dim), ResidualTemporalBlock(mid, mid, emb_dim)
        for i, (c_in, c_out) in enumerate(reversed(pairs[1:])):
            self.ups.append(nn.ModuleList([
                ResidualTemporalBlock(2 * c_out, c_in, emb_dim), ResidualTemporalBlock(c_in, c_in, emb_dim),
                nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(conv_block(dim, dim), nn.Conv1d(dim, transition_dim, 1))

    def embed(self, t: torch.Tensor, r: torch.Tensor, z: torch.Tensor, drop_mask: torch.Tensor) -> torch.Tensor:
        cond = self.cond_mlp(torch.stack([r, z], dim=-1).float())
        cond = torch.where(drop_mask[:, None], self.null_cond.expand_as(cond), cond)
        return torch.cat([self.time_mlp(t), cond], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, z: torch.Tensor,
                drop_mask: torch.Tensor) -> torch.Tensor:
        emb = self.embed(t, r, z, drop_mask)
        h = x.transpose(1, 2)  # [B, D, H]: features are channels, time is the 1-D axis
        skips = []
        for block0, block1, down in self.downs:
            h = block1(block0(h, emb), emb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid1(h, emb), emb)
        for block0, block1, up in self.ups:
            h = block1(block0(torch.cat([h, skips.pop()], dim=1), emb), emb)
            h = up(h)
        return self.final(h).transpose(1, 2)

    def hparams(self) -> dict:
        return {"transition_dim": self.transition_dim, "horizon": self.horizon, "dim": self.dim,
                "dim_mults": self.dim_mults}
