#!/usr/bin/env bash
# Issue 18's GPU figures in one call on a lent CUDA machine (docs/benchmarks.md §3).
#
#   benchmarks/gpu_speed.sh SHARED_COPY OUT_DIR
#
# `benchmarks.speed` on CUDA (bf16 autocast), sstrack-lite (the shipped model) and the ViT-B configs
# with random weights, 1, 4 and 8 targets, on three paths: eager (OpenCV crops on the CPU, as
# before), device crops, device crops + CUDA graphs; with each path's one-step agreement in pixels
# with the path before it, and a host profile of 200 graphed steps. The lent machine has no ../shared: SHARED_COPY is a carried copy holding
# data/sot/Crossing and peers/ (5 MB):
#   mkdir -p .gpudata/data/sot && cp -r ../shared/data/sot/Crossing .gpudata/data/sot/ && cp -r ../shared/peers .gpudata/
#   device run: benchmarks/gpu_speed.sh .gpudata "$OUT" (carry .gpudata; about 2 minutes on an H200,
#   plus the machine's start)
# A graph that cannot be captured falls back to op by op by itself (sstrack/cuda_graphs.py). If the
# run fails anyway, the first two paths are measured on their own, so the call still brings
# figures back. DEVICE=cpu TARGETS=1 MODELS=sstrack-lite dry-runs it here.
set -uo pipefail
SHARED=$1 OUT=$2
DEVICE=${DEVICE:-cuda} TARGETS=${TARGETS:-1 4 8} MODELS=${MODELS:-sstrack-lite sstrack-b256:random sstrack-b384:random}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__)" >> "$OUT/gpu.txt"
# shellcheck disable=SC2086  # word splitting of the lists is wanted
common=(--device "$DEVICE" --threads 8 --sot "$SHARED/data/sot" --peers "$SHARED/peers" --train-models
        --targets $TARGETS --models $MODELS)
if [ "$DEVICE" = cpu ]; then common+=(--backends torch); fi
python3 -m benchmarks.speed "${common[@]}" --out "$OUT/all" 2>&1 | grep -v WARN | tee "$OUT/speed.log" \
  || python3 -m benchmarks.speed "${common[@]}" --gpu-paths eager "device crops" --out "$OUT/no_graphs" 2>&1 \
     | grep -v WARN | tee "$OUT/speed_no_graphs.log"
# Where a graphed lite step's time goes: host-side profile of 200 steps, and the replay alone.
python3 - "$SHARED" > "$OUT/profile.txt" 2>&1 <<'PY'
import cProfile, pstats, sys, time
import torch
from sstrack import Tracker, load_model
from sstrack.sequences import load_sequence, read_image
seq = load_sequence(f"{sys.argv[1]}/data/sot/Crossing")
frames = [read_image(p) for p in seq.frames[:40]]
for name in ("sstrack-lite", "sstrack-b256:random"):
    tracker = Tracker(load_model(name), device="cuda")
    state = tracker.start(frames[0], seq.ground_truth[0])
    for frame in frames[1:20]:
        tracker.step([state], frame)
    torch.cuda.synchronize()
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for i in range(200):
        tracker.step([state], frames[1 + i % 39])
    profile.disable()
    print(name, "steps/s under the profiler", 200 / (time.perf_counter() - start))
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)
PY
