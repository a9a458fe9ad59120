"""The paper's baselines (§5, App. C), each a compact single-file learner on the cost-label-free dataset.

Reward-only offline RL on D^S u D^U: TD3+BC, IQL, CQL. Imitation from demos + mixed data: DWBC.
Reward correction learned from the demos: RGM, and CDT-V (a constrained decision transformer
whose transition costs are RGM's correction). Each module declares its `ALGORITHM` for the registry.
"""
