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
# To train the cacheable variant for issue 18 (templates attending to their own tokens only;
# docs/results-onnx-2026-12-02.md, stop 45), add --template-attention own to the extra args.
# Resuming decodes the clips again (about 100 s there): leave it that, plus a minute, beyond
# MINUTES in the device call's timeout. OUT_DIR/throughput.txt says whether the loader or the
# device bound the rate. CPU-tested (2026-12-06) with:
#   PATH=.venv/bin:$PATH DEVICE=cpu BATCH=2 WORKERS=1 STEPS=14 \
#     DATA_GLOB='../shared/data/videos/tree.avi ../shared/data/train/otb_Boy.mp4' \
#     trainer/recipes/sstrack_lite_gpu_budget.sh /tmp/gpu-dry 1
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$1 MINUTES=${2:-8}
shift 2 || shift $#
DATA=${DATA:-../shared/data}  # a copy carried to the GPU machine, which has no ../shared
BASE=${BASE:-resources/models/sstrack-lite.safetensors}
BOXES="$OUT.first_boxes.json"
# shellcheck disable=SC2086  # DATA_GLOB is a list of globs on purpose
SOURCES=$(ls ${DATA_GLOB:-$DATA/train/*.mp4 $DATA/videos/*.mp4 $DATA/videos/*.avi $DATA/videos/extra/*.mp4})
# The train/ clips' real first boxes, for those among the sources (the trainer refuses boxes of
# a video it is not given).
# shellcheck disable=SC2086
python3 - "$BOXES" "$DATA" $SOURCES <<'PY'
import json, sys
from pathlib import Path
sources = set(sys.argv[3:])
table = {str(p.with_suffix(".mp4")): {"0": json.loads(p.read_text())["first_box"]}
         for p in sorted(Path(sys.argv[2], "train").glob("*.json"))}
Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
Path(sys.argv[1]).write_text(json.dumps({path: boxes for path, boxes in table.items() if path in sources}))
PY
# shellcheck disable=SC2086
python3 -m trainer.cli --data $SOURCES --boxes "$BOXES" --base "$BASE" \
  --device "${DEVICE:-cuda}" --steps "${STEPS:-100000}" --batch-size "${BATCH:-64}" --seed 7 --threads 1 \
  --max-minutes "$MINUTES" \
  --set lr=1e-4 warmup_steps=100 checkpoint_every=500 workers="${WORKERS:-14}" \
  --out "$OUT/run" "$@"
cp "$OUT/run/model.safetensors" "$OUT/run/model.json" "$OUT/"
# What bound the rate: the share of each step spent waiting for the loader (near 1: sample
# assembly on the CPUs; near 0: the device). Steps 11 on, past the loader's start-up.
python3 - "$OUT/run/metrics.jsonl" "${BATCH:-64}" <<'PY' | tee "$OUT/throughput.txt"
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])][10:]
if rows:
    rate = statistics.median(r["samples_per_s"] for r in rows)
    wait = statistics.median(r["data_wait_s"] * r["samples_per_s"] / int(sys.argv[2]) for r in rows)
    print(f"{len(rows)} steps: median {rate:.1f} samples/s, median share of a step waiting for data {wait:.2f}")
PY
# Back on the CPU machine, before comparing: python -m trainer.scale_calibration --model OUT/model.safetensors --write-card
tar czf "$OUT/run.tgz" -C "$OUT/run" metrics.jsonl run.json latest.json checkpoints
