"""DSPO's last step (paper §4.2): distill D^S ∪ D^G into a BC policy, with the BC learner of `learners.bc`.

Each BC minibatch draws a fraction `distill.generated_share` from the generated pairs D^G and the
rest from the safe demos D^S (per-pair sampling weights, so the mix holds whatever the sizes);
`generated_share: null` is the paper's plain union (every pair equally likely).

`distill.source` names what fills that share; `generated` is the method, the others are controls:
`unlabeled` real D^U pairs (no discriminator, no diffusion) -- does generation beat just adding data?
`labeled_safe` the real D^U episodes the chain's labels call safe (z >= the smallest demo z, the same
threshold the generation conditions on) -- the discriminator's labels as a filter for BC, no diffusion:
does generation beat using the labels directly?

`distill.actions: inverse_dynamics` (a lever of the method) replaces every generated action by the action an
inverse-dynamics model, fitted on dataset.parquet's real transitions, says takes s_t to s_{t+1}
(`inverse_dynamics.py`: the generated actions disagree with their own transitions ~3x more than real ones).

`distill.labeled_share` (a lever of the method, not a control) adds those labeled-safe D^U episodes
*beside* D^G: a further fraction of each batch, the rest staying on D^S. The chain's labels then reach the
policy twice, through the generation's condition and as a filter on real data.

`distill.labeled_return_quantile` (a lever) keeps, of the labeled-safe episodes, only those whose return reaches that
quantile of the demos' returns (0: the smallest demo return; null: no floor). Why: a score that labels more of the
truly safe episodes also labels the slow, low-return ones, and cloning them pulls the policy's return below the
demos'; the floor asks for "safe *and* at least demo-good", from rewards and the demos alone (no cost label).

`distill.learner: dwbc` (a lever) distills with DWBC (Xu et al. 2022) instead of plain BC: the same mixture of
D^S and D^G (and labeled-safe episodes) is DWBC's *expert* set, drawn with the same per-pair weights, and D^U is
its mixed set, with the `dwbc.*` settings the baseline was tuned to. Tuned DWBC on D^S alone is the strongest
safe learner on BallCircle, so this asks the sharper question: does adding D^G to the best learner's expert
set beat that learner without it (the DWBC baseline row is the control)?
"""
from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import model_validator

from dspo.core.config import PosFloat, PosInt, Section, UnitFloat, Widths
from dspo.core.errors import DataError, ParamError
from dspo.data.schemas import SAFE_DEMO
from dspo.learners.baselines.dwbc import DWBC, DWBCConfig
from dspo.learners.bc import BCConfig
from dspo.learners.contract import ANALYSIS, METHOD, Algorithm, fit
from dspo.learners.nets import DeterministicPolicy
from dspo.learners.transitions import OfflineData, require_expert_data


class DistillConfig(Section):
    """params.yaml `distill` (the trainer's own settings are `bc.*`)."""

    section: ClassVar[str] = "distill"
    generated_share: UnitFloat | None  # fraction of each BC batch drawn from D^G; None = plain union D^S u D^G
    source: Literal["generated", "unlabeled", "labeled_safe"]  # what fills that share (module docstring)
    labeled_share: UnitFloat  # fraction of each batch from the D^U episodes labeled safe, beside D^G (0 = off)
    labeled_return_quantile: UnitFloat | None = None  # labeled-safe episodes kept only if return >= this demo quantile
    actions: Literal["generated", "inverse_dynamics"]  # D^G's actions as sampled, or relabeled by g(s_t, s_{t+1})
    learner: Literal["bc", "dwbc"]  # the paper's BC on the mixture, or DWBC with the mixture as its expert set
    inverse_hidden: Widths  # the inverse-dynamics model (actions: inverse_dynamics; also scripts/generation_probe.py)
    inverse_steps: PosInt
    inverse_batch_size: PosInt
    inverse_lr: PosFloat

    @model_validator(mode="after")
    def _shares_leave_room_for_demos(self) -> "DistillConfig":
        """Refuse mixes that cannot be drawn: the shares must leave room for D^S, and add to something defined."""
        if self.actions == "inverse_dynamics" and self.source != "generated":
            raise ParamError(f"distill.actions=inverse_dynamics relabels generated actions, but distill.source="
                             f"{self.source} uses real pairs (their actions are the recorded ones); set actions: generated")
        if self.labeled_share == 0:
            return self
        if self.generated_share is None:
            raise ParamError("distill.labeled_share > 0 needs a number for distill.generated_share (null is the "
                             "plain union of D^S and D^G, which leaves no share to give); set both, e.g. 0.25 and 0.25")
        if self.generated_share + self.labeled_share >= 1:
            raise ParamError(f"distill.generated_share + distill.labeled_share = "
                             f"{self.generated_share + self.labeled_share:g} leaves no share for the demos; keep it < 1")
        if self.source == "labeled_safe":
            raise ParamError("distill.labeled_share > 0 with distill.source=labeled_safe draws the same episodes twice; "
                             "set one of them")
        return self


def labeled_safe_episodes(labeled: pd.DataFrame, source: str = "labels", allow_empty: bool = False,
                          return_quantile: float | None = None) -> tuple[np.ndarray, str]:
    """Ids of the non-demo episodes that count as labeled safe, and the rule in words (for the fallback warning).

    The rule: z >= the smallest demo z (label_safety's generation condition) and, with `return_quantile`, return >=
    that quantile of the demos' returns. `allow_empty`: the `labeled_share` lever may find none on some task or seed
    and then falls back to the demos; the `labeled_safe` control, which exists to train on them, refuses instead.
    """
    demos = labeled["split"] == SAFE_DEMO
    if not demos.any():
        raise DataError(f"{source}: no safe demo is scored, so there is no safety threshold")
    min_z = float(labeled.loc[demos, "z"].min())
    keep = ~demos & (labeled["z"] >= min_z)
    rule = f"z >= the smallest demo z ({min_z:g})"
    if return_quantile is not None:
        min_return = float(np.quantile(labeled.loc[demos, "return"].to_numpy(), return_quantile))
        keep &= labeled["return"] >= min_return
        rule += f" and return >= {min_return:g} (distill.labeled_return_quantile {return_quantile:g} of the demos')"
    chosen = labeled.loc[keep, "episode_id"].to_numpy()
    if len(chosen) == 0 and not allow_empty:
        raise DataError(f"{source}: no unlabeled episode has {rule}; "
                        "distill.source=labeled_safe has nothing to add (use generated or unlabeled)")
    return chosen, rule


def mixture_weights(n_demo: int, n_generated: int, generated_share: float | None,
                    n_labeled: int = 0, labeled_share: float = 0.0) -> np.ndarray:
    """Per-pair sampling weights, pairs ordered demos | generated | labeled safe: a fraction `generated_share` of
    each batch is generated (None: uniform over demos and generated), `labeled_share` labeled safe, the rest demos."""
    if n_generated == 0 and (generated_share is None or generated_share > 0):
        raise DataError("distill.generated_share is not 0 but the generated table is empty")
    if n_labeled == 0 and labeled_share > 0:
        raise DataError("distill.labeled_share is not 0 but no unlabeled episode is labeled safe")
    if generated_share is None:
        return np.full(n_demo + n_generated, 1.0 / (n_demo + n_generated))
    demo_w = (1.0 - generated_share - labeled_share) / max(n_demo, 1)
    gen_w = generated_share / max(n_generated, 1)
    lab_w = labeled_share / max(n_labeled, 1)
    return np.concatenate([np.full(n_demo, demo_w), np.full(n_generated, gen_w), np.full(n_labeled, lab_w)])


def with_expert_pairs(data: OfflineData, obs: np.ndarray, action: np.ndarray) -> OfflineData:
    """`data` with extra expert-side (s, a) pairs appended (raw units, normalized with `data`'s normalizers).

    The pairs have no successor or reward (generated segments, states-only): reward 0, next_obs = obs,
    done 0. Only learners that read (s, a, expert) alone may train on the result (DWBC, BC), never a TD learner.
    """
    if len(obs) == 0:
        return data
    if obs.shape[1] != data.obs_dim or action.shape[1] != data.act_dim:
        raise DataError(f"shape mismatch: extra pairs have obs/action sizes {obs.shape[1]}/{action.shape[1]}, the "
                        f"transitions {data.obs_dim}/{data.act_dim}")
    dev = data.obs.device
    low, high = data.act_bounds.low, data.act_bounds.high
    new_obs = torch.as_tensor(data.obs_norm.normalize(obs), dtype=torch.float32, device=dev)
    new_act = torch.as_tensor(data.act_bounds.normalize(np.clip(action, low, high)), dtype=torch.float32, device=dev)
    n = len(obs)
    return replace(data, obs=torch.cat([data.obs, new_obs]), action=torch.cat([data.action, new_act]),
                   reward=torch.cat([data.reward, torch.zeros(n, device=dev)]),
                   next_obs=torch.cat([data.next_obs, new_obs]), done=torch.cat([data.done, torch.zeros(n, device=dev)]),
                   expert=torch.cat([data.expert, torch.ones(n, dtype=torch.bool, device=dev)]),
                   episode_id=np.concatenate([data.episode_id, np.full(n, -1, dtype=data.episode_id.dtype)]),
                   step=np.concatenate([data.step, np.zeros(n, dtype=data.step.dtype)]))


class MixtureExpertDWBC(DWBC):
    """DWBC whose expert minibatch is drawn from D^S and the extra expert pairs with the distillation's weights.

    Logs `mse` too (the mode's squared error on the expert batch, normalized action units), the column the
    distillation's training plot reads for either learner."""

    def __init__(self, data: OfflineData, cfg: DWBCConfig, device, expert_probs: torch.Tensor):
        super().__init__(data, cfg, device)
        if len(expert_probs) != len(self.rows[0]):
            raise DataError(f"{len(expert_probs)} expert weights for {len(self.rows[0])} expert pairs")
        self.expert_probs = expert_probs

    def batch(self, step: int) -> tuple[dict, dict]:
        pick = torch.multinomial(self.expert_probs, self.cfg.batch_size, replacement=True)
        return self.data.batch(self.rows[0][pick]), self.data.sample(self.cfg.batch_size, self.rows[1])

    def update(self, batch: tuple[dict, dict], step: int) -> dict[str, float]:
        logs = super().update(batch, step)
        with torch.no_grad():
            logs["mse"] = torch.mean((self.actor.mode(batch[0]["obs"]) - batch[0]["action"]) ** 2).item()
        return logs


def distill_dwbc(offline: OfflineData, extra_obs: np.ndarray, extra_act: np.ndarray, n_generated: int,
                 generated_share: float | None, labeled_share: float, cfg: DWBCConfig, device,
                 desc: str = "dwbc") -> tuple[DeterministicPolicy, pd.DataFrame]:
    """DWBC with expert set D^S | D^G | labeled safe (extra_* holds the last two, generated first) and mixed set D^U.

    The expert rows are drawn with `mixture_weights`, so the shares mean what they mean for BC."""
    require_expert_data(offline, "distill.learner=dwbc")
    n_demo = int(offline.expert.sum())
    data = with_expert_pairs(offline, extra_obs, extra_act)
    weights = mixture_weights(n_demo, n_generated, generated_share, len(extra_obs) - n_generated, labeled_share)
    probs = torch.as_tensor(weights, dtype=torch.float32, device=data.obs.device)
    learner = MixtureExpertDWBC(data, cfg, device, probs)
    curve = fit(learner, cfg.steps, cfg.log_every, desc)
    return learner.export(), curve


ALGORITHMS = (
    Algorithm("dspo", "DSPO", METHOD, "bc", BCConfig),
    # the same chain with z = the oracle's true safety label: an analysis, never a method row
    Algorithm("analysis_oracle_dspo", "DSPO w/ true labels (upper bound)", ANALYSIS, "bc", BCConfig),
)
