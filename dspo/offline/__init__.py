"""The paper's baselines (§5, App. C), each a compact single-file learner on the cost-label-free dataset.

Reward-only offline RL on D^S u D^U: TD3+BC, IQL, CQL. Imitation from demos + mixed data: DWBC.
Reward correction learned from the demos: RGM, and CDT-V (a constrained decision transformer
whose transition costs are RGM's correction). Each module has a `*Config` read from its own
params.yaml section and a `train(...)` returning (policy, loss curve, extras).
"""
from __future__ import annotations

from dspo.offline import cql, dwbc, iql, rgm, td3bc

# algo name (= params.yaml section = models/<task>/<algo>/) -> (config class, train function)
STEP_LEARNERS = {
    "td3bc": (td3bc.TD3BCConfig, td3bc.train),
    "iql": (iql.IQLConfig, iql.train),
    "cql": (cql.CQLConfig, cql.train),
    "dwbc": (dwbc.DWBCConfig, dwbc.train),
    "rgm": (rgm.RGMConfig, rgm.train),
}
BASELINES = (*STEP_LEARNERS, "cdt_v")
