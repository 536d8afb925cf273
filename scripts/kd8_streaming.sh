#!/usr/bin/env bash
# The streaming comparison of docs/results.md ("The streaming comparison on the 8 s recipe"):
# an 8 s keyword bank in the default voices, its teacher, then TC-ResNet8 and a GRU student with
# no KD, logit KD and temporal KD, 3 seeds each, scored by false rejects at 0.1 / 0.5 / 1 false
# accepts per hour over 5 h of negative audio.
#
#   bash scripts/kd8_streaming.sh [OUT]        # OUT defaults to runs/kd8
#
# About 1 h 10 min on 2 CPU cores (measured: 1 h 9 min). Every step is skipped when its output exists (the compare grids
# and the stream results reuse what is finished), so an interrupted run continues.
set -euo pipefail
OUT=${1:-runs/kd8}
PY=${PY:-.venv/bin/python}
distill() { "$PY" -m distill "$@"; }
mkdir -p "$OUT"

if [ ! -f "$OUT/bank/manifest.csv" ]; then
    distill data synth-kws --out "$OUT/bank" --words yes no up down left right on off stop go \
        --unknown-words backward bed bird cat dog eight five follow forward four happy house \
        learn marvin nine one seven sheila six three tree two visual wow zero \
        --per-word 150 --per-unknown 30 --speakers 160 --seed 0 --workers 2 \
        --tts espeak,flite,festival,piper:joe --augment all
fi
[ -d "$OUT/teacher_clean" ] || distill teach kws_teacher_clean \
    "data.root=$OUT/bank" "teacher.path=$OUT/teacher_clean"
[ -d "$OUT/teacher" ] || distill teach kws_teacher "data.root=$OUT/bank" \
    "teacher.path=$OUT/teacher" "teacher.kwargs.init_from=$OUT/teacher_clean"

# The streaming variant of every student (causal convolutions, running normalisation): the
# conditions of stateful streaming (docs/streaming.md). GRU: 64 units, batch 64 (the default
# 400-unit GRU does not fit this machine's budget on 8 s clips).
common=("data.root=$OUT/bank" "teacher.path=$OUT/teacher" "run_dir=$OUT/runs"
        student.kwargs.causal=true frontend.normalize=running)
gru=(student.kwargs.units=64 data.batch_size=64)
grid() {  # grid NAME STUDENT [--stream-eval=5] [overrides...]
    local name=$1 student=$2
    shift 2
    distill compare kws_tc_resnet8 --students "$student" --losses none,logit,temporal --seeds 3 \
        --jobs 2 --out "$OUT/$name" "$@" "${common[@]}"
}
grid cmp_tc tc_resnet8
grid cmp_gru gru "${gru[@]}"

# The streaming metric of every run, two runs at a time (`compare --stream-eval` scores them
# one after another; it then reuses these results, whose options are its own).
find "$OUT/cmp_tc" "$OUT/cmp_gru" -name student.safetensors -printf '%h\n' | sort \
    | xargs -P 2 -I{} "$PY" -m distill eval-stream {} --hours 5 > "$OUT/eval_stream.log"

grid cmp_tc tc_resnet8 --stream-eval=5
grid cmp_gru gru --stream-eval=5 "${gru[@]}"
