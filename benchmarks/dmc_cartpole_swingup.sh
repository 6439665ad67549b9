#!/usr/bin/env bash
# SAC on dm_control cartpole-swingup (state observations), the run behind
# docs/img/dmc_cartpole_swingup.png. Hyperparameters: conf/tuned/sac_dmc_cartpole_swingup.yaml
# (action repeat 4, 20k agent steps = 80k simulator steps, 0.5 gradient steps per env step,
# SAC defaults otherwise). Needs: pip install 'd2rl[dmc]'.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/bench_dmc_cartpole_swingup}
MPLBACKEND=Agg d2rl algo=sac env=dmc_cartpole_swingup seed=1 trainer.progress_bar=false output_dir="$out"
cp "$out/learning_curve.png" docs/img/dmc_cartpole_swingup.png
python -c "import json,sys; s=json.load(open(sys.argv[1])); print(json.dumps({k: s[k] for k in ('final_eval','env_steps','fit_time_s','env_steps_per_s')}, indent=1))" "$out/summary.json"
