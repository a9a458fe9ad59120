"""Quality of generated segments: how close to real data, how often out of the action bounds, and
where generated states sit relative to D^S and D^U (a 2-D PCA projection)."""
from __future__ import annotations

import numpy as np
import torch

from dspo.learners.normalizers import GaussianNormalizer
from dspo.data.schemas import SAFE_DEMO, StepData


def nearest(queries, reference, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to each query row's nearest reference row (batched torch.cdist: a batch's
    distance matrix is batch x |reference| floats)."""
    ref = torch.as_tensor(reference, dtype=torch.float32)
    idx, dist = [], []
    for i in range(0, len(queries), batch):
        best = torch.cdist(torch.as_tensor(queries[i:i + batch], dtype=torch.float32), ref).min(dim=1)
        idx.append(best.indices)
        dist.append(best.values)
    return torch.cat(idx).numpy(), torch.cat(dist).numpy()


def nearest_distances(queries: np.ndarray, reference: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row."""
    return nearest(queries, reference, batch)[1]


def generation_report(data: StepData, gen_obs: np.ndarray, gen_act: np.ndarray, n_clipped: int,
                      max_points: int, seed: int) -> tuple[dict, dict]:
    """Metrics (JSON) and the arrays for the plot. Distances are in the dataset's standardized (s, a) space;
    the reference value is the same nearest-neighbour distance for held-out real D^U pairs."""
    rng = np.random.default_rng(seed)
    real = np.concatenate([data.obs, data.action], axis=1)
    norm = GaussianNormalizer.fit(real)
    gen = norm.normalize(np.concatenate([gen_obs, gen_act], axis=1))
    real_n = norm.normalize(real)
    idx = rng.permutation(len(real_n))
    held, ref = idx[:min(max_points, len(idx) // 5)], idx[min(max_points, len(idx) // 5):]
    gen_sample = gen[rng.choice(len(gen), size=min(max_points, len(gen)), replace=False)]
    d_gen = nearest_distances(gen_sample, real_n[ref])
    d_real = nearest_distances(real_n[held], real_n[ref])
    demo = data.split == SAFE_DEMO
    d_gen_demo = nearest_distances(gen_sample, real_n[demo])
    metrics = {
        "generated_pairs": int(len(gen)),
        "nn_distance_generated_mean": float(d_gen.mean()), "nn_distance_generated_median": float(np.median(d_gen)),
        "nn_distance_real_heldout_mean": float(d_real.mean()),
        "nn_distance_ratio": float(d_gen.mean() / max(d_real.mean(), 1e-12)),
        "nn_distance_to_demos_mean": float(d_gen_demo.mean()),
        "action_entries_clipped": int(n_clipped), "action_clip_fraction": float(n_clipped / max(gen_act.size, 1)),
    }
    # 2-D PCA of standardized states, fitted on real states.
    states = norm.normalize(real)[:, :data.obs_dim]
    mean = states.mean(0)
    _, _, vt = np.linalg.svd(states[rng.choice(len(states), size=min(5000, len(states)), replace=False)] - mean,
                             full_matrices=False)
    proj = lambda x: (x - mean) @ vt[:2].T  # noqa: E731
    pick = lambda x: x[rng.choice(len(x), size=min(max_points, len(x)), replace=False)]  # noqa: E731
    points = {"D^U": proj(pick(states[~demo])), "D^S": proj(pick(states[demo])), "D^G": proj(pick(gen[:, :data.obs_dim]))}
    return metrics, points


def plot_generation(points: dict, metrics: dict, title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dspo.core.artifacts import save_figure

    fig, ax = plt.subplots(figsize=(6.5, 5))
    style = {"D^U": dict(c="lightgray", s=4), "D^S": dict(c="tab:green", s=6), "D^G": dict(c="tab:purple", s=6, alpha=0.5)}
    for name, xy in points.items():
        ax.scatter(xy[:, 0], xy[:, 1], label=f"{name} states", **style[name])
    ax.set_xlabel("PC 1 of standardized states")
    ax.set_ylabel("PC 2")
    ax.set_title(f"{title}\nNN distance generated/real = {metrics['nn_distance_ratio']:.2f}, "
                 f"clipped actions {100 * metrics['action_clip_fraction']:.1f}%")
    ax.legend(markerscale=3, fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
