#!/usr/bin/env bash
# The deployment table of docs/qat_export.md (issue "Phones and microcontrollers"): TC-ResNet8,
# BC-ResNet-1 and DS-CNN-S trained on the 8 s bank of scripts/kd8_streaming.sh (run that first,
# or give a bank), QAT, int8 ONNX and LiteRT export checked on the test split (calibrated on
# validation), and `distill bench` (size, batch-1 latency on one thread, memory budget).
#
#   bash scripts/kd8_lite.sh [OUT] [STUDENTS] [EPOCHS] [CLIP_SECONDS]
#   # OUT: runs/kd8; STUDENTS: "tc_resnet8 bc_resnet1 ds_cnn_s"; EPOCHS: 30; CLIP_SECONDS: the
#   # bank's 8 s (1: the 1 s clips around each keyword; runs go to OUT/lite1s)
#   # The converged table of docs/qat_export.md: the 4x bank in OUT/bank, EPOCHS 60, CLIP_SECONDS 1.
#
# Without a teacher (teacher.kind=none): the table is about int8 against float of one student.
# Each step is skipped when its output exists. Logs in OUT/lite/<student>/*.log.
set -euo pipefail
OUT=${1:-runs/kd8}
STUDENTS=${2:-tc_resnet8 bc_resnet1 ds_cnn_s}
EPOCHS=${3:-30}
CLIP=${4:-}
PY=${PY:-.venv/bin/python}
distill() { "$PY" -m distill "$@"; }
[ -f "$OUT/bank/manifest.csv" ] || { echo "no bank in $OUT/bank: run scripts/kd8_streaming.sh $OUT first" >&2; exit 1; }

clip=()
LITE="$OUT/lite"
if [ -n "$CLIP" ]; then clip=("data.clip_seconds=$CLIP"); LITE="$OUT/lite${CLIP}s"; fi

for S in $STUDENTS; do
    R="$LITE/$S"
    mkdir -p "$R"
    [ -f "$R/student.safetensors" ] || distill fit kws_tc_resnet8 --run-dir "$R" \
        "student.name=$S" "trainer.max_epochs=$EPOCHS" teacher.kind=none \
        losses.logit_kd.weight=0 losses.temporal_kd.weight=0 \
        "data.root=$OUT/bank" "${clip[@]}" > "$R/fit.log" 2>&1
    [ -f "$R/qat/qat_student.safetensors" ] || distill qat "$R" qat.epochs=2 > "$R/qat.log" 2>&1
    for SPLIT in test val; do
        distill export "$R" --format onnx --int8 --split $SPLIT > "$R/export_onnx_$SPLIT.log" 2>&1
        distill export "$R" --format tflite --int8 --split $SPLIT > "$R/export_tflite_$SPLIT.log" 2>&1
    done
    distill bench "$R" --runs 300 > "$R/bench.log" 2>&1
    echo "$S: $(tail -n 1 "$R/bench.log")"
done
