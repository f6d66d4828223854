#!/usr/bin/env bash
# v4 distilled into v4 without joint blocks 1 and 2, searching a 160 px crop (issue 18: a network about
# 1.75x cheaper than v4 on the CPU). The student starts as v4's own weights less two blocks
# (trainer.drop_blocks; untrained OPE 40.9) and cut to the centre of v4's crop (trainer.search_crop), then
# learns v4's answers on the crops v4 met while tracking ../shared/data/train (trainer.distill_capture,
# every 2nd frame; trainer.distill). Never ../shared/data/sot (our evaluation set).
# Usage: [BASE=v4.safetensors] [THREADS=2] trainer/recipes/sstrack_lite_distill.sh OUT_DIR [--set steps=N ...] [--resume]
#   BASE defaults to resources/models/sstrack-lite.safetensors while that is v4; otherwise take v4 from git:
#   git show e27b0b7:resources/models/sstrack-lite.safetensors > v4.safetensors.
# Resumable: run again with --resume after an interruption (the recordings already made are kept).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: [BASE=v4.safetensors] trainer/recipes/sstrack_lite_distill.sh OUT_DIR [--set steps=N] [--resume]}
shift
BASE=${BASE:-resources/models/sstrack-lite.safetensors}
V4=063d7daa6f87
if [ "$(sha256sum "$BASE" | cut -c1-12)" != "$V4" ]; then
  echo "error: $BASE is not v4 (sha256 $V4...); get it with: git show e27b0b7:resources/models/sstrack-lite.safetensors > v4.safetensors, and set BASE=v4.safetensors" >&2
  exit 2
fi
THREADS=${THREADS:-2}
DROPPED="$OUT.drop12.safetensors"
STUDENT="$OUT.student.safetensors"
[ -f "$DROPPED" ] || python -m trainer.drop_blocks "$BASE" --drop 1,2 --out "$DROPPED"
[ -f "$STUDENT" ] || python -m trainer.search_crop "$DROPPED" --size 160 --out "$STUDENT"
python -m trainer.distill_capture --teacher "$BASE" --clips ../shared/data/train --out "$OUT.data" --threads "$THREADS"
python -m trainer.distill --student "$STUDENT" --teacher "$BASE" --data "$OUT.data" --out "$OUT" --threads "$THREADS" "$@"
# Then, as for every shipped model:
#   python -m trainer.scale_calibration --model "$OUT"/model.safetensors --clips ../shared/data/train --write-card
#   benchmarks.ope / effort / review --exits / speed against the shipped model; if no worse:
#   python trainer/recipes/ship_default.py "$OUT" --recipe trainer/recipes/sstrack_lite_distill.sh --metrics M.json
