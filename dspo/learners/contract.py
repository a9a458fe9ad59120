"""The learner contract: what every trained thing in this project looks like, and the one loop that trains it.

A learner (BC, the discriminator and its vCLUB term, the diffusion model, TD3+BC, IQL, CQL,
DWBC, RGM, CDT-V) is built from a typed config (a `dspo.core.config.Section` read from its
params.yaml section) and exposes two methods, CORL style:

- `batch(step)`: draw the next minibatch (all data-side randomness happens here);
- `update(batch, step) -> dict[str, float]`: one gradient step, returning what to log.

:func:`fit` is the one training loop: a tqdm bar, per-`log_every` means of every logged value
(the training curve that dvc.yaml declares as a plot), optional evaluation rows (model selection)
and optional periodic saves of a resumable :class:`FitState`.

A module that trains a policy declares it as `ALGORITHMS = (Algorithm(...), ...)`; the registry
(`learners.registry`) collects those declarations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import pandas as pd
from tqdm import trange


class Learner(Protocol):
    def batch(self, step: int) -> Any: ...

    def update(self, batch: Any, step: int) -> dict[str, float]: ...


@dataclass
class FitState:
    """Where a fit stands: the last finished step, the curve so far and the running sums since its last row."""

    step: int = 0
    history: list[dict] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0


def fit(learner: Learner, steps: int, log_every: int, desc: str, *, state: FitState | None = None,
        eval_every: int | None = None, evaluate: Callable[[int, bool], dict] | None = None,
        save_every: int | None = None, save: Callable[[FitState], None] | None = None,
        columns: list[str] | None = None) -> pd.DataFrame:
    """Run `learner.update(learner.batch(step), step)` from `state.step + 1` to `steps`; return the curve.

    A curve row is written every `log_every` steps, at the last step, and every `eval_every` steps
    when given; `evaluate(step, due)` adds columns to each row (`due`: an evaluation step).
    `save(state)` runs every `save_every` steps and at the end, after that step's row.
    """
    state = state if state is not None else FitState()
    for step in trange(state.step + 1, steps + 1, initial=state.step, total=steps, desc=desc, leave=False,
                       mininterval=1.0):
        logs = learner.update(learner.batch(step), step)
        for key, value in logs.items():
            state.sums[key] = state.sums.get(key, 0.0) + float(value)
        state.count += 1
        due = eval_every is not None and (step % eval_every == 0 or step == steps)
        if due or step % log_every == 0 or step == steps:
            row = {"step": step, **{k: v / state.count for k, v in state.sums.items()}}
            if evaluate is not None:
                row.update(evaluate(step, due))
            state.history.append(row)
            state.sums, state.count = {}, 0
        state.step = step
        if save is not None and (step % save_every == 0 or step == steps):
            save(state)
    return pd.DataFrame(state.history, columns=columns)


class FunctionLearner:
    """A learner from two callables (a pre-training phase, a toy): `batch` may be omitted."""

    def __init__(self, update: Callable[[Any, int], dict], batch: Callable[[int], Any] | None = None):
        self._update, self._batch = update, batch

    def batch(self, step: int) -> Any:
        return None if self._batch is None else self._batch(step)

    def update(self, batch: Any, step: int) -> dict[str, float]:
        return self._update(batch, step)


# ----------------------------------------------------------------------------- declaring an algorithm
METHOD, BASELINE, ANALYSIS = "method", "baseline", "analysis"



@dataclass(frozen=True)
class Algorithm:
    name: str  # params list entry, models/<task>/<name>/, reports/<task>/eval/<name>.json
    display: str  # its name in tables and plots
    role: str  # method | baseline | analysis
    section: str  # the params.yaml section of its hyper-parameters
    config: type | None = None  # its Section model (None: it shares another learner's, e.g. BC)
    train: Callable | None = None  # (OfflineData, config, device, desc) -> (policy, curve, extras) for step learners
    learner: type | None = None  # its contract class, built as learner(OfflineData, config, device) (step learners)
