"""Every trained thing, behind one contract (`learners.contract`): BC, the baselines, DSPO's parts.

A learner has a typed config built from its params.yaml section, a `batch(step)` that draws a
minibatch and an `update(batch, step) -> logs` step; `contract.fit` is the one training loop.
`learners.registry` names each algorithm once. Learners never build a simulator: sizes and
action bounds come from the task registry and the dataset.
"""
