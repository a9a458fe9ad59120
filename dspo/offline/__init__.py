"""The paper's baselines (§5, App. C), each a compact single-file learner on the cost-label-free dataset.

Reward-only offline RL on D^S u D^U: TD3+BC, IQL, CQL. Imitation from demos + mixed data: DWBC.
Reward correction learned from the demos: RGM, and CDT-V (a constrained decision transformer
whose transition costs are RGM's correction). Each module has a `*Config` read from its own
params.yaml section and a `train(...)` returning (policy, loss curve, extras).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from dspo.offline import cql, dwbc, iql, rgm, td3bc


class Learner(NamedTuple):
    config: type  # dataclass read from params.yaml section <algo>
    agent: type  # holds the networks; `update(data, step) -> losses`
    train: Callable  # (OfflineData, config, device, desc) -> (policy, curve, extras)


# algo name (= params.yaml section = models/<task>/<algo>/) -> its learner
STEP_LEARNERS = {
    "td3bc": Learner(td3bc.TD3BCConfig, td3bc.TD3BC, td3bc.train),
    "iql": Learner(iql.IQLConfig, iql.IQL, iql.train),
    "cql": Learner(cql.CQLConfig, cql.CQL, cql.train),
    "dwbc": Learner(dwbc.DWBCConfig, dwbc.DWBC, dwbc.train),
    "rgm": Learner(rgm.RGMConfig, rgm.RGM, rgm.train),
}
BASELINES = (*STEP_LEARNERS, "cdt_v")
