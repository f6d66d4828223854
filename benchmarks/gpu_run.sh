#!/usr/bin/env bash
# The GPU figures (docs/benchmarks.md §3, issue "GPU path check"), in one call on a lent CUDA machine.
#
#   benchmarks/gpu_run.sh VIDEOS_DIR BASE_MODEL OUT_DIR [STEPS]
#
# 1. `benchmarks.speed` on CUDA (bf16 autocast): sstrack-lite and the ViT-B configs with random
#    weights (speed does not depend on the values), 1 and 4 targets; training samples/s for lite
#    and b256.
# 2. The objective ablation (`benchmarks.ablation --no-eval`): the three variants trained side by
#    side on the one GPU from the same ImageNet-initialised lite, same clips, steps and seed. Their
#    models come back and are evaluated on the CPU with `python -m benchmarks.ablation --out DIR`.
# VIDEOS_DIR must hold unlabeled clips only (we use ../shared/data/videos/extra); BASE_MODEL is
# `sstrack-lite:imagenet`, or that model saved once with `save_model` where the
# efficientnet-lite0 package is not installed.
set -euo pipefail
VIDEOS=$1 BASE=$2 OUT=$3 STEPS=${4:-1500} LIMIT=${ABLATION_TIME_LIMIT:-420}
VARIANTS=${VARIANTS:-full no-contrastive no-global} WORKERS=${WORKERS:-4}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
[ -n "${SKIP_SPEED:-}" ] || python3 -m benchmarks.speed --device cuda --threads 8 --videos "$VIDEOS" ${SPEED_ARGS:-} \
  --models sstrack-lite sstrack-b256:random sstrack-b384:random \
  --train-models "$BASE" sstrack-b256:random --train-steps 20 --train-workers 8 --out "$OUT/speed"
RUNS=$(mktemp -d)
for variant in $VARIANTS; do
  timeout "$LIMIT" python3 -m benchmarks.ablation --videos "$VIDEOS" --base "$BASE" --device cuda --workers "$WORKERS" --threads 1 \
    --steps "$STEPS" --batch-size 16 --warmup $((STEPS / 4)) --variants "$variant" --no-eval --out "$RUNS" \
    > "$RUNS/$variant.log" 2>&1 &
done
wait
for variant in $VARIANTS; do
  mkdir -p "$OUT/ablation/$variant"
  cp "$RUNS/$variant/model.safetensors" "$OUT/ablation/$variant/" || tail -20 "$RUNS/$variant.log"
done
# Cards, logs and per-step metrics in one archive (few files come back from the machine).
tar czf "$OUT/ablation_logs.tgz" -C "$RUNS" $(cd "$RUNS" && ls -d *.log */model.json */metrics.jsonl 2>/dev/null)
