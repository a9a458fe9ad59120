"""The paper's 2-D illustration (Fig. 3): why a discriminator needs return-agnostic learning.

Each sample is a point (return, safety) in [0, 1]^2. The safe demonstrations are safe AND
high-return; the unlabeled set holds safe lower-return samples, unsafe high-return samples
(safety just below the demos') and unsafe low-return samples. A plain discriminator (Eq. 1)
separates the demos from everything else and, the unsafe high-return samples being nearer to
the demos, ranks them above the safe lower-return ones; the vCLUB term (Eq. 4, dspo.learners.dspo.vclub)
forbids z to carry return information, so D must use the safety coordinate and recalls the
safe samples. Everything is deterministic given the seed and runs in seconds on a CPU.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from dspo.learners.contract import FunctionLearner, fit
from dspo.learners.nets import mlp
from dspo.learners.dspo.discriminator import discriminator_loss, gradient_penalty
from dspo.learners.dspo.vclub import ReturnBinClassifier, return_bins, theta_step, vclub_penalty

# group: (n, return range, safety range); safety >= 0.6 is safe
TOY_GROUPS = {
    "demo": (40, (0.75, 0.95), (0.70, 0.95)),
    "safe_low": (150, (0.05, 0.55), (0.60, 1.00)),
    "unsafe_high": (150, (0.60, 1.00), (0.30, 0.55)),
    "unsafe_low": (150, (0.00, 0.55), (0.00, 0.50)),
}


def make_toy_data(seed: int = 0) -> dict[str, np.ndarray]:
    """Points x [N, 2] = (return, safety) and their group names; demos first."""
    rng = np.random.default_rng(seed)
    xs, groups = [], []
    for name, (n, r_range, s_range) in TOY_GROUPS.items():
        xs.append(np.stack([rng.uniform(*r_range, n), rng.uniform(*s_range, n)], axis=1))
        groups += [name] * n
    return {"x": np.concatenate(xs).astype(np.float32), "group": np.asarray(groups)}


def train_toy(data: dict, mi_weight: float, seed: int = 0, steps: int = 400, batch_size: int = 64,
              grad_penalty: float = 0.0, n_bins: int = 10, q_steps: int = 2) -> torch.nn.Module:
    """An MLP discriminator on the 2 features, trained like train_discriminator (balanced batches,
    theta step then phi step); returns the model mapping centred features to a logit."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(data["x"]) * 2.0 - 1.0
    demos = torch.as_tensor(np.flatnonzero(data["group"] == "demo"))
    unlabeled = torch.as_tensor(np.flatnonzero(data["group"] != "demo"))
    bins = return_bins(data["x"][:, 0], n_bins)
    labels = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)])
    model, q = mlp(2, [64, 64], 1), ReturnBinClassifier(n_bins)
    opt_phi = torch.optim.Adam(model.parameters(), lr=3e-3)
    opt_theta = torch.optim.Adam(q.parameters(), lr=1e-2)

    def batch(step: int) -> torch.Tensor:
        return torch.cat([demos[torch.randint(len(demos), (batch_size,), generator=gen)],
                          unlabeled[torch.randint(len(unlabeled), (batch_size,), generator=gen)]])

    def update(idx: torch.Tensor, step: int) -> dict[str, float]:
        inputs = x[idx].requires_grad_(grad_penalty > 0)
        logits = model(inputs).squeeze(-1)
        z = torch.sigmoid(logits)
        for _ in range(q_steps):
            theta_step(q, opt_theta, z, bins[idx])
        loss = discriminator_loss(logits, labels)
        if mi_weight > 0:
            loss = loss + mi_weight * vclub_penalty(q, z, bins[idx])
        if grad_penalty > 0:
            loss = loss + grad_penalty * gradient_penalty(logits, (inputs,))
        opt_phi.zero_grad(set_to_none=True)
        loss.backward()
        opt_phi.step()
        return {"loss": loss.item()}

    fit(FunctionLearner(update, batch), steps, log_every=steps, desc=f"toy mi_weight={mi_weight:g}")
    return model.eval()


@torch.no_grad()
def toy_scores(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return torch.sigmoid(model(torch.as_tensor(x, dtype=torch.float32) * 2.0 - 1.0).squeeze(-1)).numpy()


def toy_metrics(z: np.ndarray, data: dict) -> dict:
    """Recall of the safe unlabeled samples and pairwise mis-ranking.

    Threshold rule: a sample is recalled when z >= the smallest z of a safe demo (the
    paper's App. D.1 choice of the safety condition); `recall_safe_half` uses z > 0.5.
    `pair_misrank` is the fraction of (unsafe high-return, safe lower-return) pairs with the
    unsafe sample scored higher; `corr_return` the Pearson correlation of z with the return on
    the unlabeled samples.
    """
    group = data["group"]
    threshold = float(z[group == "demo"].min())
    safe, unsafe = z[group == "safe_low"], z[np.isin(group, ["unsafe_high", "unsafe_low"])]
    return {
        "threshold": threshold,
        "recall_safe": float(np.mean(safe >= threshold)),
        "recall_safe_half": float(np.mean(safe > 0.5)),
        "false_recall_unsafe": float(np.mean(unsafe >= threshold)),
        "pair_misrank": float(np.mean(z[group == "unsafe_high"][:, None] > safe[None, :])),
        "corr_return": float(np.corrcoef(z[group != "demo"], data["x"][group != "demo", 0])[0, 1]),
    }


def run_toy(mi_weight: float, seed: int = 0, grad_penalty: float = 0.0, steps: int = 400) -> dict:
    """Train the toy discriminator once and return its metrics (see :func:`toy_metrics`)."""
    data = make_toy_data(seed)
    model = train_toy(data, mi_weight, seed, steps=steps, grad_penalty=grad_penalty)
    return {"mi_weight": mi_weight, "grad_penalty": grad_penalty, "seed": seed,
            **toy_metrics(toy_scores(model, data["x"]), data)}


TOY_VARIANTS = (("w/o return-agnostic", 0.0, 0.0), ("w/o return-agnostic, gp", 0.0, 1.0), ("return-agnostic (vCLUB)", 1.0, 0.0))
GROUP_STYLE = {"demo": ("tab:green", "*", "safe demos"), "safe_low": ("tab:blue", "o", "safe, lower return"),
               "unsafe_high": ("tab:red", "^", "unsafe, high return"), "unsafe_low": ("tab:orange", "v", "unsafe, low return")}


def plot_toy(path: str | os.PathLike, seed: int = 0, variants=TOY_VARIANTS, steps: int = 400) -> list[dict]:
    """Fig. 3 as a PNG: the data, then z over the plane for each (title, mi_weight, grad_penalty).

    The solid contour is the recall threshold (smallest demo z), the dashed one z = 0.5.
    Returns each variant's metrics.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dspo.core.artifacts import save_figure

    data = make_toy_data(seed)
    grid = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    gr, gs = np.meshgrid(grid, grid)
    fig, axes = plt.subplots(1, len(variants) + 1, figsize=(4.2 * (len(variants) + 1), 4), sharey=True)
    results = []
    for ax, variant in zip(axes, [None, *variants]):
        if variant is not None:
            title, mi_weight, gp = variant
            model = train_toy(data, mi_weight, seed, steps=steps, grad_penalty=gp)
            metrics = toy_metrics(toy_scores(model, data["x"]), data)
            results.append({"variant": title, "mi_weight": mi_weight, "grad_penalty": gp, **metrics})
            zz = toy_scores(model, np.stack([gr.ravel(), gs.ravel()], 1)).reshape(gr.shape)
            ax.contourf(gr, gs, zz, levels=np.linspace(0, 1, 11), cmap="Greys", alpha=0.6)
            ax.contour(gr, gs, zz, levels=[metrics["threshold"]], colors="k", linewidths=1.5)
            ax.contour(gr, gs, zz, levels=[0.5], colors="k", linestyles="--", linewidths=1)
            ax.set_title(f"{title}\nrecall {metrics['recall_safe']:.2f}, mis-ranked pairs {metrics['pair_misrank']:.2f}",
                         fontsize=9)
        else:
            ax.set_title("(a) safe demos and unlabeled data", fontsize=9)
        for name, (color, marker, label) in GROUP_STYLE.items():
            pts = data["x"][data["group"] == name]
            ax.scatter(pts[:, 0], pts[:, 1], s=10 if name != "demo" else 40, c=color, marker=marker, label=label,
                       edgecolors="none")
        ax.set_xlabel("return (normalized)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("safety (>= 0.6 is safe)")
    axes[0].legend(fontsize=7, loc="lower left")
    save_figure(fig, path)
    return results
