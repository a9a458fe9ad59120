"""The multi-task suite: units of `dvc repro` per task and seed, executors that run them, Tables 1-2."""
