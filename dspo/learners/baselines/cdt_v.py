"""CDT-V: a Constrained Decision Transformer (Liu et al., 2023) on costs estimated by RGM.

CDT needs a per-step cost, which the dataset does not have. CDT-V (DSPO paper, App. C) takes
the RGM reward correction as a transition-level safety estimate: where RGM lowers the reward
(Delta r < 0) the transition looks less like the safe demos. We use the monotone map
    c(s, a) = sigmoid(-(Delta r(s, a, r) - m) / sd)  in (0, 1),
with m, sd the mean and std of Delta r over the dataset (RGM's correction is only defined up
to a shift the value function absorbs, so its level carries no information; its spread does),
then express it in the task's cost units: c is multiplied by kappa / max over the safe demos
of their episode sum of c (every demo is known to satisfy kappa, so this is the largest
estimated cost a known-safe episode reaches). CDT is then trained on D^S u D^U and deployed
with cost-to-go target `cost_target * kappa`, decremented with the same estimator at test
time (the simulator's cost is never read). Its return target is the largest episode return
in the data among episodes whose *estimated* cost is within the target.

The transformer follows CDT: per step the tokens (return-to-go, cost-to-go, state, action)
with a timestep embedding, a causal GPT, and the action predicted from the state token.
Simplifications: deterministic tanh action head trained by MSE (CDT uses a stochastic policy
with entropy regularization), no Pareto-frontier return relabeling augmentation, no
auxiliary cost-prediction head, and CPU-sized depth/steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from dspo.core.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Section, UnitFloat
from dspo.core.errors import DataError
from dspo.data.episodes import episodes_of, window_index
from dspo.data.schemas import SAFE_DEMO, StepData
from dspo.learners.baselines.rgm import RewardCorrection
from dspo.learners.contract import Algorithm, BASELINE, fit
from dspo.learners.nets import MAX_TIMESTEP
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer



class CDTConfig(Section):
    section: ClassVar[str] = "cdt_v"
    steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    weight_decay: NonNegFloat
    warmup_steps: NonNegInt
    grad_clip: NonNegFloat
    context_len: PosInt
    d_model: PosInt
    n_layers: PosInt
    n_heads: PosInt
    dropout: UnitFloat
    cost_target: NonNegFloat
    log_every: PosInt


class ConstrainedDecisionTransformer(nn.Module):
    """Causal GPT over (R_t, C_t, s_t, a_t) tokens; returns normalized actions in [-1, 1] per step."""

    def __init__(self, obs_dim: int, act_dim: int, d_model: int, n_layers: int, n_heads: int, context_len: int,
                 dropout: float):
        super().__init__()
        self.config = dict(obs_dim=obs_dim, act_dim=act_dim, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                           context_len=context_len, dropout=dropout)
        self.context_len = context_len
        self.embed_return = nn.Linear(1, d_model)
        self.embed_cost = nn.Linear(1, d_model)
        self.embed_obs = nn.Linear(obs_dim, d_model)
        self.embed_act = nn.Linear(act_dim, d_model)
        self.embed_time = nn.Embedding(MAX_TIMESTEP, d_model)
        self.embed_norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.gpt = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, act_dim)

    def forward(self, rtg: torch.Tensor, ctg: torch.Tensor, obs: torch.Tensor, act: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """rtg, ctg [B, T] (scaled), obs [B, T, obs], act [B, T, act], timesteps [B, T] -> actions [B, T, act]."""
        batch, steps = rtg.shape
        time = self.embed_time(timesteps.clamp(0, MAX_TIMESTEP - 1))
        tokens = torch.stack([self.embed_return(rtg[..., None]) + time, self.embed_cost(ctg[..., None]) + time,
                              self.embed_obs(obs) + time, self.embed_act(act) + time], dim=2)
        tokens = self.drop(self.embed_norm(tokens.reshape(batch, 4 * steps, -1)))
        causal = nn.Transformer.generate_square_subsequent_mask(4 * steps, device=rtg.device, dtype=tokens.dtype)
        hidden = self.ln_f(self.gpt(tokens, mask=causal, is_causal=True))
        return torch.tanh(self.head(hidden[:, 2::4]))  # read at the state tokens: sees R, C, s of step t


# ----------------------------------------------------------------------------- estimated costs
def normalized_inputs(obs_norm: GaussianNormalizer, bounds: BoundsNormalizer, obs: np.ndarray,
                      action: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (s, a) arrays as RGM's networks read them: standardized states, actions clipped to the bounds and scaled.

    One helper for the correction (CDT-V's costs, the RGM scorer's z) and the RGM scorer's segment classifier.
    """
    return (torch.as_tensor(obs_norm.normalize(obs), dtype=torch.float32),
            torch.as_tensor(bounds.normalize(np.clip(action, bounds.low, bounds.high)), dtype=torch.float32))


@torch.no_grad()
def corrections(correction: RewardCorrection, obs_norm: GaussianNormalizer, bounds: BoundsNormalizer,
                obs: np.ndarray, action: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Delta r for raw (s, a, r) arrays."""
    return correction(*normalized_inputs(obs_norm, bounds, obs, action),
                      torch.as_tensor(reward, dtype=torch.float32)).numpy()


def estimated_costs(delta: np.ndarray, delta_mean: float, delta_std: float) -> np.ndarray:
    """c = sigmoid(-(Delta r - mean) / std) in (0, 1)."""
    return (1.0 / (1.0 + np.exp((np.asarray(delta, np.float64) - delta_mean) / delta_std))).astype(np.float32)


@dataclass
class CDTData:
    """Episodes laid end to end (sorted), with normalized inputs and scaled to-go targets."""

    obs: torch.Tensor
    action: torch.Tensor
    rtg: torch.Tensor  # return-to-go / return_scale
    ctg: torch.Tensor  # estimated cost-to-go / kappa
    timestep: torch.Tensor
    episode_end: torch.Tensor  # index one past the last row of each row's episode
    starts: torch.Tensor  # rows a training window may start at
    return_scale: float
    delta_mean: float
    delta_std: float
    cost_unit: float
    target_return: float
    kappa: float


def build_cdt_data(data: StepData, correction: RewardCorrection, obs_norm: GaussianNormalizer,
                   bounds: BoundsNormalizer, kappa: float, cost_target: float, context_len: int,
                   device: torch.device | str = "cpu") -> CDTData:
    episodes = episodes_of(data.episode_id, data.step)
    order = episodes.order
    ep, step = data.episode_id[order], data.step[order]
    obs, act, rew = data.obs[order], data.action[order], data.reward[order].astype(np.float64)
    delta = corrections(correction, obs_norm, bounds, obs, act, rew.astype(np.float32)).astype(np.float64)
    delta_mean, delta_std = float(delta.mean()), float(delta.std()) or 1.0
    cost = estimated_costs(delta, delta_mean, delta_std).astype(np.float64)
    frame = pd.DataFrame({"ep": ep, "r": rew, "c": cost})
    ep_return = frame.groupby("ep", sort=False)["r"].transform("sum").to_numpy()
    ep_cost = frame.groupby("ep", sort=False)["c"].transform("sum").to_numpy()
    rtg = ep_return - frame.groupby("ep", sort=False)["r"].cumsum().to_numpy() + rew
    ctg = ep_cost - frame.groupby("ep", sort=False)["c"].cumsum().to_numpy() + cost
    is_demo = data.split[order] == SAFE_DEMO
    demo_cost = ep_cost[is_demo]
    if demo_cost.size == 0 or demo_cost.max() <= 0:
        raise DataError("CDT-V needs safe demonstrations (D^S) with a positive estimated cost to calibrate kappa")
    cost_unit = kappa / float(demo_cost.max())
    ep_total_cost = ep_cost * cost_unit
    within = ep_total_cost <= cost_target * kappa
    target_return = float(ep_return[within].max() if within.any() else ep_return[is_demo].max())
    return_scale = float(np.abs(ep_return).max()) or 1.0

    end = episodes.end  # one past each row's episode end
    rows = np.arange(len(ep))
    can_start = (rows + context_len <= end) | episodes.is_first

    def t(x, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)

    return CDTData(
        obs=t(obs_norm.normalize(obs)), action=t(bounds.normalize(np.clip(act, bounds.low, bounds.high))),
        rtg=t(rtg / return_scale), ctg=t(ctg * cost_unit / kappa), timestep=t(step, torch.long),
        episode_end=t(end, torch.long), starts=t(np.flatnonzero(can_start), torch.long),
        return_scale=return_scale, delta_mean=delta_mean, delta_std=delta_std, cost_unit=cost_unit, target_return=target_return, kappa=kappa)


def sample_windows(d: CDTData, batch_size: int, context_len: int):
    """Random context windows, right-padded with a mask where an episode ends early (batched gather)."""
    start = d.starts[torch.randint(0, len(d.starts), (batch_size,), device=d.obs.device)]
    idx, mask = window_index(start, context_len, d.episode_end[start])
    idx = torch.where(mask, idx, start[:, None])
    return d.rtg[idx], d.ctg[idx], d.obs[idx], d.action[idx], d.timestep[idx], mask


class CDTTrainer:
    def __init__(self, data: CDTData, obs_dim: int, act_dim: int, cfg: CDTConfig, device: torch.device | str = "cpu"):
        self.data, self.cfg = data, cfg
        self.model = ConstrainedDecisionTransformer(obs_dim, act_dim, cfg.d_model, cfg.n_layers, cfg.n_heads,
                                                    cfg.context_len, cfg.dropout).to(device)
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optim, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))

    def batch(self, step: int):
        return sample_windows(self.data, self.cfg.batch_size, self.cfg.context_len)

    def update(self, batch, step: int) -> dict[str, float]:
        rtg, ctg, obs, act, ts, mask = batch
        pred = self.model(rtg, ctg, obs, act, ts)
        err = ((pred - act) ** 2).mean(-1)
        loss = (err * mask).sum() / mask.sum()
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optim.step()
        self.sched.step()
        return {"action_mse": loss.item()}


def train(data: StepData, correction: RewardCorrection, correction_norms: tuple, kappa: float, cfg: CDTConfig,
          device, desc: str = "cdt_v"):
    obs_norm, bounds = correction_norms
    cdt_data = build_cdt_data(data, correction, obs_norm, bounds, kappa, cfg.cost_target, cfg.context_len, device)
    trainer = CDTTrainer(cdt_data, data.obs_dim, data.act_dim, cfg, device)
    curve = fit(trainer, cfg.steps, cfg.log_every, desc)
    policy = CDTPolicy(trainer.model.cpu().eval(), correction, obs_norm, bounds, cdt_data.return_scale,
                       (cdt_data.delta_mean, cdt_data.delta_std), cdt_data.cost_unit, kappa, cdt_data.target_return, cfg.cost_target * kappa)
    return policy, curve, {"target_return": cdt_data.target_return, "cost_unit": cdt_data.cost_unit,
                           "delta_mean": cdt_data.delta_mean, "delta_std": cdt_data.delta_std,
                           "target_cost": cfg.cost_target * kappa}


# ----------------------------------------------------------------------------- deployment
class CDTPolicy:
    """Episodic policy for the lock-step rollouts: keeps each env's history and its to-go targets.

    `reset(n)` at the start of a chunk, `act(obs, env_idx)` before each step, `observe(env_idx,
    actions, rewards)` after it. The cost-to-go is decremented with the RGM-estimated cost of
    the step just taken (no simulator cost is read).
    """

    kind = "cdt_policy"

    def __init__(self, model: ConstrainedDecisionTransformer, correction: RewardCorrection,
                 obs_norm: GaussianNormalizer, bounds: BoundsNormalizer, return_scale: float,
                 delta_stats: tuple[float, float], cost_unit: float, kappa: float, target_return: float, target_cost: float, device: torch.device | str = "cpu"):
        self.model, self.correction = model.to(device).eval(), correction
        self.obs_norm, self.bounds = obs_norm, bounds
        self.return_scale, self.cost_unit, self.kappa = return_scale, cost_unit, kappa
        self.delta_stats = tuple(float(v) for v in delta_stats)
        self.target_return, self.target_cost = target_return, target_cost
        self.device = device
        self.reset(0)

    @property
    def obs_dim(self) -> int:
        return self.model.config["obs_dim"]

    def reset(self, n: int) -> None:
        self.hist = {"obs": [[] for _ in range(n)], "act": [[] for _ in range(n)], "rtg": [[] for _ in range(n)],
                     "ctg": [[] for _ in range(n)]}
        self.rtg = np.full(n, self.target_return, dtype=np.float64)
        self.ctg = np.full(n, self.target_cost, dtype=np.float64)
        self.pending_obs = [None] * n

    @torch.no_grad()
    def act(self, obs: np.ndarray, env_idx: np.ndarray) -> np.ndarray:
        k = self.model.context_len
        for j, i in enumerate(env_idx):
            self.hist["obs"][i].append(self.obs_norm.normalize(obs[j]).astype(np.float32))
            self.hist["rtg"][i].append(self.rtg[i] / self.return_scale)
            self.hist["ctg"][i].append(self.ctg[i] / self.kappa)
            self.pending_obs[i] = obs[j].copy()
        lengths = {len(self.hist["obs"][i]) for i in env_idx}
        if len(lengths) != 1:
            raise RuntimeError("CDTPolicy expects lock-step envs (equal history lengths)")
        t = lengths.pop()
        w = min(t, k)
        act_dim = self.model.config["act_dim"]

        def window(key, pad_last=False):
            rows = []
            for i in env_idx:
                seq = self.hist[key][i][-w:]
                if pad_last:  # the current step's action is unknown: a zero placeholder (masked causally)
                    seq = seq[-(w - 1):] if w > 1 else []
                    seq = list(seq) + [np.zeros(act_dim, dtype=np.float32)]
                rows.append(np.asarray(seq, dtype=np.float32))
            return torch.as_tensor(np.stack(rows), device=self.device)

        ts = torch.arange(t - w, t, device=self.device)[None, :].expand(len(env_idx), w)
        pred = self.model(window("rtg"), window("ctg"), window("obs"), window("act", pad_last=True), ts)
        return self.bounds.unnormalize(pred[:, -1].cpu().numpy())

    @torch.no_grad()
    def observe(self, env_idx: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        obs = np.stack([self.pending_obs[i] for i in env_idx]).astype(np.float32)
        delta = corrections(self.correction, self.obs_norm, self.bounds, obs, actions,
                            np.asarray(rewards, dtype=np.float32))
        costs = estimated_costs(delta, *self.delta_stats) * self.cost_unit
        for j, i in enumerate(env_idx):
            self.hist["act"][i].append(self.bounds.normalize(np.clip(actions[j], self.bounds.low,
                                                                     self.bounds.high)).astype(np.float32))
            self.rtg[i] -= float(rewards[j])
            self.ctg[i] -= float(costs[j])

    def checkpoint(self, task: str, extra: dict | None = None) -> dict:
        return {"kind": self.kind, "task": task, "obs_dim": self.obs_dim, "model_config": self.model.config,
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "correction": self.correction.checkpoint(task, self.obs_norm, self.bounds, self.obs_dim,
                                                         self.model.config["act_dim"]),
                "obs_norm": self.obs_norm.state_dict(), "act_bounds": self.bounds.state_dict(),
                "return_scale": self.return_scale, "delta_stats": list(self.delta_stats), "cost_unit": self.cost_unit, "kappa": self.kappa,
                "target_return": self.target_return, "target_cost": self.target_cost, **(extra or {})}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: torch.device | str = "cpu") -> "CDTPolicy":
        model = ConstrainedDecisionTransformer(**ckpt["model_config"])
        model.load_state_dict(ckpt["state_dict"])
        return cls(model, RewardCorrection.from_checkpoint(ckpt["correction"]),
                   GaussianNormalizer.from_state_dict(ckpt["obs_norm"]),
                   BoundsNormalizer.from_state_dict(ckpt["act_bounds"]), ckpt["return_scale"], ckpt["delta_stats"],
                   ckpt["cost_unit"],
                   ckpt["kappa"], ckpt["target_return"], ckpt["target_cost"], device)


ALGORITHMS = (Algorithm("cdt_v", "CDT-V", BASELINE, "cdt_v", CDTConfig),)
