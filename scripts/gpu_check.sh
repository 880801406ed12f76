#!/usr/bin/env bash
# The GPU checks of this project in one prepared run, for a session lent a CUDA machine (see README "GPU").
#
# Runs from the repository root, without installing repro (PYTHONPATH=src): that machine has its own python3
# with torch, lightning and torchmetrics but no registry, so hydra-core / omegaconf / antlr4 travel as wheels in
# .whl/ (ignored; fetch them with `make gpu-wheels`). Writes into $OUT (default outputs/gpu_check):
#   gpu.txt                      the device, driver and package versions
#   mult_mica.json, bench_mult.log   MulT / MICA train step and peak memory at the MOSEI unaligned shape, fp32 + bf16
#   gpu_tests.log                the `gpu`-marked tests (tests/spine/test_gpu.py)
#   fusion_throughput.json, data_loading.json, bench_avdigits.log   every AV-Digits fusion, fp32 + bf16
#   msaf_ravdess_b2.json, msaf_ravdess_epoch.json, bench_ravdess.log   the MSAF RAVDESS network's train step at
#       batch 2 (every variant) and one fold-epoch of model compute at the authors' batch 4 (300 train steps +
#       60 test forwards), fp32 + bf16
#   msaf_ntu_gpu.json, ntu_data.json, bench_ntu.log   (part ntu) the I3D + HCN MSAF network's train step at batch
#       4 × 32×224² in fp32 and bf16 autocast (scripts/bench_ntu.py --suite msaf), and the NTU data pipeline's clips/s
#       with 8 workers (scripts/bench_ntu_data.py, loader part; needs PyAV: `make gpu-wheels` fetches its wheel)
# Each part has its own time limit so that one slow part cannot take the others' results with it; PARTS chooses
# the parts (default "mult tests avdigits").
set -uo pipefail
OUT="${OUT:-outputs/gpu_check}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/repro-site .whl/*.whl \
        || { echo "gpu_check: installing .whl/*.whl failed"; exit 1; }
    export PYTHONPATH="/tmp/repro-site"
fi
export PYTHONPATH="src:.:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
start=$(date +%s)
stamp() { echo "[gpu_check] $(( $(date +%s) - start )) s: $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, lightning, torchmetrics, hydra; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'lightning', lightning.__version__, 'torchmetrics', torchmetrics.__version__, 'hydra', hydra.__version__)"
  nproc; uptime; } 2>&1 | tee "$OUT/gpu.txt"

PARTS="${PARTS:-mult tests avdigits}"
if [[ " $PARTS " == *" mult "* ]]; then
    stamp "MulT / MICA bench"
    timeout "${MULT_LIMIT:-240}" python3 scripts/bench.py --suite mult --gpu-only --out "$OUT" 2>&1 \
        | tee "$OUT/bench_mult.log"
fi
if [[ " $PARTS " == *" tests "* ]]; then
    stamp "gpu tests"
    timeout "${TEST_LIMIT:-180}" python3 -m pytest -q -m gpu -p no:cacheprovider tests/spine/test_gpu.py 2>&1 \
        | tee "$OUT/gpu_tests.log"
fi
if [[ " $PARTS " == *" avdigits "* ]]; then
    stamp "AV-Digits fusions bench"
    timeout "${AVDIGITS_LIMIT:-150}" python3 scripts/bench.py --suite avdigits --gpu-only --out "$OUT" 2>&1 \
        | tee "$OUT/bench_avdigits.log"
fi
if [[ " $PARTS " == *" ravdess "* ]]; then
    stamp "MSAF RAVDESS network bench"
    { timeout "${RAVDESS_STEP_LIMIT:-120}" python3 scripts/bench_video.py --device cuda --net msaf --batch 2 \
          --steps 10 --out "$OUT/msaf_ravdess_b2.json"
      timeout "${RAVDESS_EPOCH_LIMIT:-180}" python3 scripts/bench_video.py --device cuda --net msaf --batch 4 \
          --steps 300 --warmup 5 --eval-steps 60 --variants fp32,bf16 --out "$OUT/msaf_ravdess_epoch.json"; } 2>&1 \
        | tee "$OUT/bench_ravdess.log"
fi
if [[ " $PARTS " == *" ntu "* ]]; then
    stamp "NTU MSAF network + data pipeline bench"
    { timeout "${NTU_STEP_LIMIT:-180}" python3 scripts/bench_ntu.py --suite msaf --device cuda --threads 4 \
          --out "$OUT/msaf_ntu_gpu.json"
      if python3 -c "import av" 2>/dev/null; then
          timeout "${NTU_DATA_LIMIT:-180}" python3 scripts/bench_ntu_data.py --parts loader --clips 64 --workers 8 \
              --batch 4 --out "$OUT/ntu_data.json"
      else
          echo "gpu_check: PyAV (av) not importable here: NTU data pipeline skipped (make gpu-wheels ships its wheel)"
      fi; } 2>&1 | tee "$OUT/bench_ntu.log"
fi
stamp "done"
