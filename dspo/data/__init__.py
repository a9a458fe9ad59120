"""What the learners read and how it was made: task registry, simulators, behavior agents, collection.

`tasks` and `schemas` are cheap and simulator-free (learners may import them); `envs`, `behavior`,
`collect` and `rollout` build simulators and are imported by collection and evaluation only.
"""
