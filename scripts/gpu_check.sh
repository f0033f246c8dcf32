#!/usr/bin/env bash
# On a machine with CUDA: the cuda-marked tests, then the GPU benchmarks, in well under 5 minutes.
#   bash scripts/gpu_check.sh [OUT_DIR]        (results: OUT_DIR/cuda_tests.txt, bench_*.json)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT"
python - <<'PY' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
status=0
timeout 180 python -m pytest -m cuda -q -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt" || status=1
# step benchmark (manual vs autograd vs nn.Linear) and epoch benchmark (hand loop, app path, ...)
timeout 60 python scripts/bench.py --mode step --device cuda --json "$OUT/bench_step.json" | tee "$OUT/bench_step.txt" || status=1
timeout 120 python scripts/bench.py --mode epoch --device cuda --epochs 3 --json "$OUT/bench_epoch.json" \
    | tee "$OUT/bench_epoch.txt" || status=1
timeout 60 python scripts/bench.py --mode step --device cuda --sizes 784 4096 4096 10 --batch 1024 \
    --json "$OUT/bench_wide.json" | tee "$OUT/bench_wide.txt" || status=1
# bf16 training reaches the fp32 accuracy within 0.5 points (the main job on the GPU)
for precision in 32-true bf16-mixed; do
    timeout 60 python scripts/train.py trainer=gpu trainer.precision=$precision callbacks.progress_bar=null \
        ++trainer.enable_progress_bar=false "hydra.run.dir=$OUT/train_$precision" 2>&1 | tail -3 || status=1
done
exit $status
