"""DSPO: Diffusion-guided Safe Policy Optimization from a cost-label-free offline dataset.

The package holds all real code; `stages/*.py` are thin Typer entry points that DVC runs.
Four floors, each importing only from the floors below it (tests/test_layout.py checks):

- `dspo.core`        errors, typed params, seeding, atomic artifacts and checkpoints, stage glue;
- `dspo.data`        the task registry, simulators, behavior agents, collection, rollouts, schemas;
- `dspo.learners`    the learner contract and every algorithm: BC, the six baselines
                     (`learners.baselines`) and DSPO's parts (`learners.dspo`: discriminator,
                     diffusion, distillation). Learners never import a simulator (`data.envs`);
- `dspo.evaluation`  policies in the simulator, labeling and generation analyses, reports.
"""
from dspo.core.quiet import silence_third_party

silence_third_party()

__version__ = "0.1.0"
