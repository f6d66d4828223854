#!/usr/bin/env bash
# The campaign (sstrack_lite_campaign.sh: shipped weights, train/ first-frame boxes + unlabeled
# clips) for a fixed wall-clock budget on a lent GPU machine, in one call of the device tool:
#
#   trainer/recipes/sstrack_lite_gpu_budget.sh OUT_DIR [MINUTES] [extra sstrack-train args]
#
# It trains until MINUTES of optimiser steps are spent (clip caching comes first and is not
# counted), then writes OUT_DIR/model.safetensors + model.json and a resumable checkpoint, and
# packs the run's small files into OUT_DIR/run.tgz so they come back from the machine. Run it
# again with --resume to continue. Sample assembly runs in WORKERS CPU processes (about 40
# samples/s each on one core here, benchmarks/training_speed.py), so the loader, not the GPU,
# bounds the rate: on the lent H200 (16 cores, 14 workers, batch 64) 162 samples/s, median of
# 626 steps in 6.5 minutes (docs/results-gpu-2026-12-04.md). That machine has no ../shared and
# no PyAV (the trainer then decodes with OpenCV): copy ../shared/data/train and videos/extra
# (47 MB) into a git-ignored folder of the checkout, carry it, and set DATA and DATA_GLOB:
#   DATA=.gpudata DATA_GLOB='.gpudata/train/*.mp4 .gpudata/videos/extra/*.mp4' WORKERS=14 BATCH=64 \
#     trainer/recipes/sstrack_lite_gpu_budget.sh /tmp/g 6.5 --set lr_drop_fraction=1.0 regression_radius=1 \
#     'autobox_aspects=[0.4,0.6,1.0,1.7]'
# Resuming decodes the clips again (about 100 s there): leave it that, plus a minute, beyond
# MINUTES in the device call's timeout. CPU-tested with:
#   DEVICE=cpu BATCH=2 WORKERS=0 STEPS=20 BASE=tiny.safetensors DATA_GLOB='../shared/data/videos/tree.avi' \
#     trainer/recipes/sstrack_lite_gpu_budget.sh /tmp/gpu-dry 0.05
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$1 MINUTES=${2:-8}
shift 2 || shift $#
DATA=${DATA:-../shared/data}  # a copy carried to the GPU machine, which has no ../shared
BASE=${BASE:-resources/models/sstrack-lite.safetensors}
BOXES="$OUT.first_boxes.json"
python3 - "$BOXES" "$DATA" <<'PY'
import json, sys
from pathlib import Path
table = {str(p.with_suffix(".mp4")): {"0": json.loads(p.read_text())["first_box"]}
         for p in sorted(Path(sys.argv[2], "train").glob("*.json"))}
Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
Path(sys.argv[1]).write_text(json.dumps(table))
PY
# shellcheck disable=SC2086  # DATA_GLOB is a list of globs on purpose
SOURCES=$(ls ${DATA_GLOB:-$DATA/train/*.mp4 $DATA/videos/*.mp4 $DATA/videos/*.avi $DATA/videos/extra/*.mp4})
# shellcheck disable=SC2086
python3 -m trainer.cli --data $SOURCES --boxes "$BOXES" --base "$BASE" \
  --device "${DEVICE:-cuda}" --steps "${STEPS:-100000}" --batch-size "${BATCH:-64}" --seed 7 --threads 1 \
  --max-minutes "$MINUTES" \
  --set lr=1e-4 warmup_steps=100 checkpoint_every=500 workers="${WORKERS:-14}" \
  --out "$OUT/run" "$@"
cp "$OUT/run/model.safetensors" "$OUT/run/model.json" "$OUT/"
# Back on the CPU machine, before comparing: python -m trainer.scale_calibration --model OUT/model.safetensors --write-card
tar czf "$OUT/run.tgz" -C "$OUT/run" metrics.jsonl run.json latest.json checkpoints
