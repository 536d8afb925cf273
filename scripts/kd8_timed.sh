#!/usr/bin/env bash
# The per-step arms of docs/results.md ("The streaming comparison on the 8 s recipe", issue
# "Temporal KD where timing decides"): TC-ResNet8 trained at every output step with the
# max-pooling loss, the teacher's timing and the manifest's timing (oracle), 3 seeds, on the bank
# and teacher of scripts/kd8_streaming.sh (run that first), scored by FRR at fixed FA/h over the
# same 5 h of negatives. The clip arms to compare with are that script's cmp_tc grid (the same
# recipe, seeds and overrides; the window option below does nothing without a per-step term).
#
#   bash scripts/kd8_timed.sh [OUT] [ARMS]     # OUT: runs/kd8; ARMS: maxpool,teacher_timed,span_timed
set -euo pipefail
OUT=${1:-runs/kd8}
ARMS=${2:-maxpool,teacher_timed,span_timed}
PY=${PY:-.venv/bin/python}
[ -d "$OUT/teacher" ] || { echo "no teacher in $OUT: run scripts/kd8_streaming.sh $OUT first" >&2; exit 1; }

# Per-step arms pool a 1 s window at every step (losses.timed.window_seconds=1): the window a
# wake-word detector scores; the saved student records it and eval-stream pools over it.
args=(kws_tc_resnet8 --students tc_resnet8 --losses "$ARMS" --seeds 3 --jobs 2
      --out "$OUT/cmp_timed" "data.root=$OUT/bank" "teacher.path=$OUT/teacher" "run_dir=$OUT/runs"
      student.kwargs.causal=true frontend.normalize=running losses.timed.window_seconds=1)
"$PY" -m distill compare "${args[@]}"
find "$OUT/cmp_timed" -name student.safetensors -printf '%h\n' | sort \
    | xargs -P 2 -I{} "$PY" -m distill eval-stream {} --hours 5 > "$OUT/eval_stream_timed.log"
"$PY" -m distill compare "${args[@]}" --stream-eval=5
