"""Third-party warnings filtered in one place (stages, tests, `--help`).

Imported first by `dspo.core` so every entry point is quiet before fsrl, wandb, gymnasium-robotics
or pkg_resources get imported: their deprecation and "Adroit" notices say nothing about this
project's run. Set DSPO_WARNINGS=1 to see them again.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[2]  # the repo: dspo/, stages/, tests/, ...
_SITE = ("site-packages", "dist-packages")

_THIRD_PARTY = ("gymnasium", "gymnasium_robotics", "wandb", "sentry_sdk", "pkg_resources", "fsrl", "tianshou",
                "pybullet", "bullet_safety_gym", "safety_gymnasium", "metadrive", "diffusers", "torch", "dvclive",
                "matplotlib", "pygame", "setuptools")


def silence_third_party() -> None:
    """Hide warnings raised from third-party packages; the project's own warnings stay visible."""
    if os.environ.get("DSPO_WARNINGS") == "1":
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning, UserWarning, ImportWarning,
                     RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=r"^(?!dspo|__main__)")
    # torch notes that arrays read zero-copy from Parquet are read-only; learners never write to them
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    for name in _THIRD_PARTY:
        warnings.filterwarnings("ignore", module=name)
        logging.getLogger(name).setLevel(logging.ERROR)
    # Libraries reset the filters on import (tianshou: simplefilter("once", DeprecationWarning)), so the
    # last word is at display time: a warning raised outside the project's own files is not shown.
    if not getattr(warnings.showwarning, "_dspo_quiet", False):
        warnings.showwarning = _project_only(warnings.showwarning)
    try:  # gymnasium(-robotics) print version notices (the Adroit reward note) to stderr at import
        import farama_notifications

        farama_notifications.notifications.clear()
    except ImportError:
        pass


def _project_only(show):
    def showwarning(message, category, filename, lineno, file=None, line=None):
        path = str(filename)
        if path.startswith(str(_PROJECT)) and not any(part in path for part in _SITE):
            show(message, category, filename, lineno, file, line)

    showwarning._dspo_quiet = True
    return showwarning
