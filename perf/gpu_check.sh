#!/usr/bin/env bash
# The GPU check of issue 15, one command on one CUDA GPU (H100/H200), ~4-6 minutes:
#   1. perf/kernel_check.py: the training kernels are correct on this GPU in bf16 (packed rows through sdpa,
#      torch_varlen and flex_attention vs the padded batch; K routed adapters vs peft);
#   2. perf/run_perf.py --device cuda: every training and generation row at the study's shapes, PASS/FAIL per
#      target and the study's projected GPU-hours.
# Installs nothing. vLLM rows run only where `import vllm` works (pip install '.[vllm]'); otherwise they say why.
# Results go to $OUT (the device tool's output folder) or, elsewhere, to perf/results/.
# Device tool: run(command="bash perf/gpu_check.sh", timeout_s=560); then commit the JSON under perf/results/.
set -uo pipefail
OUT=${OUT:-perf/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
STAMP=$(date +%F)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi-$STAMP.csv"
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, torch.cuda.get_device_name(0))"
timeout 120 $PY perf/kernel_check.py --device cuda --out "$OUT/kernel-check-$STAMP.json" 2>&1 | grep -v -i warn
check=${PIPESTATUS[0]}
timeout 400 $PY perf/run_perf.py --device cuda --out "$OUT/gpu-llama2-7b-$STAMP.json" 2>&1 | tee "$OUT/perf-$STAMP.log" | grep -v -i warn
perf=${PIPESTATUS[0]}
echo "kernel_check exit $check, run_perf exit $perf"
exit $(( check != 0 || perf != 0 ))
