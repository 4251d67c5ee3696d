#!/usr/bin/env bash
# Issue 13's whole ablation, as one resumable command (RESULTS.md, section "Pair weights
# that cannot collapse ..."): the five commands whose reports RESULTS.md copies, in order.
#   bash benchmarks/issue13_ablation.sh [OUTPUT_DIR] [DATA_DIR]
# Every run is reused once its results.json is complete and resumes from its checkpoints
# otherwise, so a rerun after an interruption redoes only what was unfinished. About 2 h
# of the 2-core CPU machine alone, from nothing (102 training runs of 200-600 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/hl_jax_ablation/issue13}"
data="${2:-/tmp/hl_jax_ablation/tfds}"
common=(--output_dir="$out" --corpus=youtube_highlights --seeds=3 --data_dir="$data")
python -m benchmarks.ablate "${common[@]}" --models=A \
  --methods=joint,joint_detached,joint_tempered,joint_capped,joint_self_paced,ranking_d,ranking_em \
  --report=variants
python -m benchmarks.ablate "${common[@]}" --models=A \
  --methods=joint,joint_capped,ranking_d,joint_capped_domain,joint_capped_wd,ranking_d_domain \
  --report=shortcut
python -m benchmarks.ablate "${common[@]}" --models=S --methods=ranking_d,joint,best --report=ours_s
python -m benchmarks.ablate "${common[@]}" --models=A --methods=ranking_d,joint,best \
  --feature_sets=i3d_rgb,i3d_rgb_flow,i3d_rgb_flow_audio --report=features
python -m benchmarks.pair_weights --ablation_dir="$out"
