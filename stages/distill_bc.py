"""Stage distill_bc: the BC trainer on D^S ∪ D^G (paper §4.2), D^G drawn with share `distill.generated_share`.

With `distill.source: unlabeled | labeled_safe` (controls) real D^U pairs -- all of them, or those of the
episodes the chain's labels call safe -- take D^G's place at the same share. `distill.labeled_share`
adds the labeled-safe episodes beside D^G, `distill.actions: inverse_dynamics` relabels D^G's actions with an
inverse-dynamics model fitted on the dataset's transitions, `distill.learner: dwbc` trains DWBC with that mixture as
its expert set and D^U as its mixed set (`dwbc.*` settings; levers of the method)."""
from pathlib import Path

import numpy as np
import typer

from dspo.core.artifacts import save_checkpoint, write_curve
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import load_params, resolve_device, seed_everything
from dspo.core.errors import SchemaError
from dspo.data.schemas import (GENERATED, LABELED, SAFE_DEMO, UNLABELED, read_dataset, read_frame, read_table, scalars,
                               vectors)
from dspo.data.tasks import get_task
from dspo.learners.bc import BCConfig, train_bc
from dspo.learners.baselines.dwbc import DWBCConfig
from dspo.learners.dspo.distill import (DistillConfig, distill_dwbc, labeled_safe_episodes,
                                        mixture_weights)
from dspo.learners.dspo.inverse_dynamics import consecutive, fit_inverse_dynamics, generated_segments, relabel
from dspo.learners.transitions import build_offline_data

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         generated: Path = typer.Option(..., help="generated.parquet"),
         labels: Path = typer.Option(..., help="the chain's labeled.parquet (read for distill.source=labeled_safe)"),
         algo: str = typer.Option("dspo", help="policy folder under models/<task>/"),
         seed: int = typer.Option(..., help="learner seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    all_params = load_params(params)
    cfg = BCConfig.from_params(all_params, source=params).for_algo(algo)
    distill = DistillConfig.from_params(all_params, source=params)
    dwbc_cfg = DWBCConfig.from_params(all_params, source=params) if distill.learner == "dwbc" else None
    share = distill.generated_share
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    demos = data.select(data.split == SAFE_DEMO)
    table, info = read_table(GENERATED, generated)
    if info["task"] != task:
        raise SchemaError(f"{generated}: generated for task {info['task']!r}, expected {task!r}")
    gen_obs, gen_act = vectors(table, "obs"), vectors(table, "action")
    if gen_obs.shape[1] != spec.obs_dim or gen_act.shape[1] != spec.act_dim:
        raise SchemaError(f"{generated}: obs/action sizes {gen_obs.shape[1]}/{gen_act.shape[1]} do not match task "
                          f"{task!r} ({spec.obs_dim}/{spec.act_dim})")
    seed_everything(seed)
    action_change = None
    if distill.actions == "inverse_dynamics":  # the lever: D^G's actions from g(s_t, s_{t+1}), fitted on real pairs
        model = fit_inverse_dynamics(*consecutive(data.episode_id, data.step, data.obs, data.action)[:3],
                                     distill.inverse_hidden, distill.inverse_steps, distill.inverse_batch_size,
                                     distill.inverse_lr, seed)
        seg_obs, seg_act = generated_segments(scalars(table, "segment_id"), scalars(table, "step"), gen_obs, gen_act)
        gen_obs, gen_act = relabel(model, seg_obs)
        action_change = float(np.abs(gen_act - seg_act[:, :-1].reshape(gen_act.shape)).mean())
    if distill.source == "unlabeled":  # the control: real D^U pairs instead of the generated ones
        unlabeled = data.select(data.split == UNLABELED)
        gen_obs, gen_act = unlabeled.obs, unlabeled.action
    elif distill.source == "labeled_safe":  # the control: the D^U episodes the labels call safe
        ids = labeled_safe_episodes(read_frame(LABELED, labels), str(labels),
                                    return_quantile=distill.labeled_return_quantile)[0]
        chosen = data.select(np.isin(data.episode_id, ids))
        gen_obs, gen_act = chosen.obs, chosen.action
    lab_obs, lab_act = demos.obs[:0], demos.action[:0]
    labeled_share = distill.labeled_share
    if labeled_share > 0:  # the lever: labeled-safe real episodes beside D^G
        ids, rule = labeled_safe_episodes(read_frame(LABELED, labels), str(labels), allow_empty=True,
                                          return_quantile=distill.labeled_return_quantile)
        if len(ids) == 0:  # no D^U episode clears the threshold: the share returns to the demos (recorded)
            typer.echo(f"warning: no unlabeled episode has {rule} in {labels}; labeled_share {labeled_share} -> 0")
            labeled_share = 0.0
        else:
            chosen = data.select(np.isin(data.episode_id, ids))
            lab_obs, lab_act = chosen.obs, chosen.action
    if dwbc_cfg is not None:  # the lever: DWBC with the mixture as its expert set, D^U as its mixed set
        offline = build_offline_data(data, spec.act_low, spec.act_high, resolve_device(device))
        policy, curve = distill_dwbc(offline, np.concatenate([gen_obs, lab_obs]), np.concatenate([gen_act, lab_act]),
                                     len(gen_obs), share, labeled_share, dwbc_cfg, resolve_device(device),
                                     desc=algo)
    else:
        obs = np.concatenate([demos.obs, gen_obs, lab_obs])
        act = np.concatenate([demos.action, gen_act, lab_act])
        weights = mixture_weights(len(demos.obs), len(gen_obs), share, len(lab_obs), labeled_share)
        policy, curve = train_bc(obs, act, spec.act_low, spec.act_high, cfg, resolve_device(device),
                                 weights=weights, desc=algo)
    out = dirs["models"] / algo / seed_dir(seed) / "policy.pt"
    save_checkpoint(policy.checkpoint(task, {"algo": algo, "seed": seed, "demo_pairs": int(len(demos.obs)),
                                             "generated_pairs": int(len(gen_obs)), "generated_share": share,
                                             "source": distill.source, "labeled_pairs": int(len(lab_obs)),
                                             "labeled_share": labeled_share, "labeled_share_requested":
                                             distill.labeled_share, "actions": distill.actions,
                                             "relabel_mean_abs_change": action_change, "learner": distill.learner,
                                             "trainer": (dwbc_cfg.model_dump() if dwbc_cfg is not None
                                                         else cfg.model_dump(exclude={"per_algo"})),
                                             "labeled_return_quantile": distill.labeled_return_quantile}), out)
    write_curve(curve, dirs["reports"] / "train" / algo / f"{seed_dir(seed)}.csv")
    typer.echo(f"{algo}: {len(demos.obs)} demo + {len(gen_obs)} {distill.source} pairs (share {share}) + "
               f"{len(lab_obs)} labeled-safe pairs (share {labeled_share}), actions {distill.actions}, "
               f"learner {distill.learner}"
               f"{'' if action_change is None else f' (mean |change| {action_change:.3f})'}, final MSE "
               f"{curve['mse'].iloc[-1]:.4f} -> {out}")


if __name__ == "__main__":
    app()
