"""Ground floor: the project's errors, typed params, seeds, artifacts/checkpoints and stage glue.

Imports nothing else of the package; every other module may import from here.
"""
