#!/usr/bin/env bash
# The sweep figures in README "Sweeps" (measured on the shared 2-core machine, load average ~10
# from other work at the time, so wall times are noisy):
#   hpo       10 Optuna trials of 50k-step PPO on CartPole (conf/hpo/ppo_cartpole.yaml): 8 min 38 s,
#             4 trials at return 500; summary in <dir>/sweep_summary.csv, optimization_results.yaml
#   launchers 4 tuned PPO CartPole jobs of 20k steps: basic launcher 63 s, ray_local 73 s
#             (9 s of it ray.init); identical returns per seed under both launchers
# Needs: pip install 'd2rl[sweep]'. Usage: benchmarks/sweeps.sh [hpo|launchers] [out dir]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-launchers}
out=${2:-multirun/bench_sweeps}
export MPLBACKEND=Agg
if [ "$what" = hpo ]; then
  time d2rl -m +hpo=ppo_cartpole hydra.sweeper.n_trials=10 hydra.sweep.dir="$out/hpo"
  cat "$out/hpo/optimization_results.yaml"
else
  time d2rl -m seed=0,1,2,3 trainer.total_env_steps=20000 trainer.progress_bar=false hydra.sweep.dir="$out/basic"
  time d2rl -m hydra/launcher=ray_local seed=0,1,2,3 trainer.total_env_steps=20000 trainer.progress_bar=false \
    hydra.sweep.dir="$out/ray"
  paste -d, <(cut -d, -f1-3 "$out/basic/sweep_summary.csv") <(cut -d, -f3 "$out/ray/sweep_summary.csv")
fi
