#!/usr/bin/env bash
# The GPU checks of the throughput and planning work, in priority order, in one run on a GPU machine:
#   bash benchmarks/gpu_check.sh OUT_DIR
# 1. FlexAttention equals the dense reference on CUDA (outputs and gradients, fp32 and bf16);
# 2. training-step table: base 224² (every path), then base 448², large, giant with the best path;
# 3. one paper-budget CEM plan (base, 300 x 30, bf16). Every row is appended to OUT_DIR/*.jsonl at once.
set -uo pipefail
out=${1:-gpu_out}; mkdir -p "$out"
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"
timeout 90 python -m pytest -q -p no:cacheprovider tests/test_attention.py -k "cuda" 2>&1 | tail -5 | tee "$out/cuda_tests.txt"
ts="python benchmarks/train_step.py --device cuda --jsonl $out/train_step.jsonl --warmup 3 --steps 10"
timeout 220 $ts --sizes base --res 224 --batch 32 2>>"$out/stderr.txt" | tee "$out/train_step.txt"
best=$(python - "$out/train_step.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"path": "reference"' not in l]
print(max(rows, key=lambda r: r["clips_s"])["path"] if rows else "attention")
PY
)
echo "best path: $best" | tee -a "$out/train_step.txt"
timeout 110 python benchmarks/plan.py --size base --grid 16 --samples 300 --iterations 30 --naive-samples 0 --bf16 --compile 2>>"$out/stderr.txt" | tee "$out/plan.txt"
timeout 60 $ts --sizes base --res 448 --batch 8 --paths "reference,$best" 2>>"$out/stderr.txt" | tail -2 | tee -a "$out/train_step.txt"
timeout 60 $ts --sizes large --res 224 --batch 16 --paths "reference,$best" 2>>"$out/stderr.txt" | tail -2 | tee -a "$out/train_step.txt"
timeout 80 $ts --sizes giant --res 224 --batch 8 --checkpointing --paths "reference,$best" 2>>"$out/stderr.txt" | tail -2 | tee -a "$out/train_step.txt"
