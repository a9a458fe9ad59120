"""Episode boundaries of a step table, computed once, and fixed-length windows inside episodes.

Every learner that works on whole episodes or windows of them (transitions, CDT-V's to-go
targets, the discriminator's windows, the diffusion segments) starts from the same thing: the
rows sorted by (episode_id, step), where each episode starts and how long it is. This module
is that one place; it reads nothing but the two columns, so it costs no simulator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episodes:
    """Boundaries in the sorted row order (`order` sorts the table by episode, then step)."""

    order: np.ndarray  # [n_rows] permutation of the table's rows
    ids: np.ndarray  # [n_episodes] episode ids, ascending
    first: np.ndarray  # [n_episodes] sorted-row index of each episode's first step
    lengths: np.ndarray  # [n_episodes] steps per episode
    episode_of_row: np.ndarray  # [n_rows] index into `ids` of each sorted row

    @property
    def position(self) -> np.ndarray:
        """[n_rows] index of each sorted row within its episode (0, 1, ...)."""
        return np.arange(len(self.order)) - self.first[self.episode_of_row]

    @property
    def is_first(self) -> np.ndarray:
        return self.position == 0

    @property
    def is_last(self) -> np.ndarray:
        ep = self.episode_of_row
        last = np.ones(len(ep), dtype=bool)
        last[:-1] = ep[1:] != ep[:-1]
        return last

    @property
    def end(self) -> np.ndarray:
        """[n_rows] one past the last sorted row of each row's episode."""
        return np.repeat(self.first + self.lengths, self.lengths)


def episodes_of(episode_id: np.ndarray, step: np.ndarray) -> Episodes:
    order = np.lexsort((step, episode_id))
    ids, first, inverse, lengths = np.unique(episode_id[order], return_index=True, return_inverse=True,
                                             return_counts=True)
    return Episodes(order, ids, first, lengths, inverse)


def window_index(starts, length: int, limit=None):
    """Indices [B, length] of windows beginning at `starts` [B] (torch), and where they stay below `limit` [B].

    The caller decides what stands in for positions past the limit (zeros, a repeated row): the
    mask says which positions are real.
    """
    import torch

    idx = starts[:, None] + torch.arange(length, device=starts.device)
    return idx, (None if limit is None else idx < limit[:, None])
