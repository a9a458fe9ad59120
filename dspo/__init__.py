"""DSPO: Diffusion-guided Safe Policy Optimization from a cost-label-free offline dataset.

The package holds all real code; `stages/*.py` are thin Typer entry points that DVC runs.
"""

__version__ = "0.1.0"
