#!/usr/bin/env bash
# Every GPU figure the project owes, measured in one go (under 8 minutes on one H100 / H200):
#   training img/s, model-only vs end-to-end (the reference's 4-stack hourglass, 256 px, batch 32),
#   evaluation img/s, peak GPU memory and host RSS (benchmarks/train_throughput.py);
#   pseudo-labelling ms/img, prediction with 4 views + identity and Lucas-Kanade flow
#   (benchmarks/pseudo_label_throughput.py).
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]
#
# OUT_DIR defaults to $OUT (the device tool's output folder) or benchmarks/results/gpu-<time>.
# It receives env.txt, train.json/.log, pseudo_labels.json/.log and summary.md (copy its table
# into docs/benchmarks.md with the date and the card). Runs from the working tree without pip:
# the GPU host has torch but no network, so the four folders are linked into a temporary
# `animalpose` package when it is not installed. SMOKE=1 runs tiny sizes (checks the script on a
# CPU: DEVICE=cpu SMOKE=1 bash benchmarks/gpu_suite.sh /tmp/suite).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
CORES=$(nproc)
WORKERS=${WORKERS:-$((CORES > 3 ? CORES - 2 : 1))}

if ! "$PY" -c "import animalpose.datasets" 2>/dev/null; then
    shim=$(mktemp -d)
    mkdir -p "$shim/animalpose"
    for folder in datasets train adapt evaluation; do ln -s "$PWD/$folder" "$shim/animalpose/$folder"; done
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$SMOKE" = 1 ]; then
    TRAIN_SIZE=(--stacks 1 --channels 32 --inp-res 128 --batch 8 --num-images 64 --iters 4 --warmup 1)
    PSEUDO_SIZE=(--stacks 1 --channels 32 --inp-res 128 --out-res 32 --batch 8 --shots 4
        --frames-per-shot 8 --frame-size 320 180 --repeat 1)
else
    TRAIN_SIZE=(--stacks 4 --batch 32 --num-images 1024 --iters 60 --warmup 10)
    PSEUDO_SIZE=(--stacks 4 --batch 64 --shots 24 --frames-per-shot 50 --frame-size 640 360
        --repeat 2 --amp)
fi

{
    date -u +"%Y-%m-%d %H:%M UTC"
    echo "cores: $CORES, loader workers: $WORKERS, device: $DEVICE, smoke: $SMOKE"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, keep going on failure
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s (log: $OUT_DIR/$name.log)"
    [ $rc -eq 0 ] || status=1
}

step train 270 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --workers "$WORKERS" \
    "${TRAIN_SIZE[@]}" --data-root "$OUT_DIR/synthetic_data" --json "$OUT_DIR/train.json"
step pseudo_labels 170 "$PY" benchmarks/pseudo_label_throughput.py --device "$DEVICE" \
    --workers "$WORKERS" "${PSEUDO_SIZE[@]}" --json "$OUT_DIR/pseudo_labels.json"
rm -rf "$OUT_DIR/synthetic_data"

"$PY" - "$OUT_DIR" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [f"# GPU suite ({(out / 'env.txt').read_text().splitlines()[0]})", "",
        "| figure | value |", "| --- | --- |"]
for name in ("train", "pseudo_labels"):
    path = out / f"{name}.json"
    figures = json.loads(path.read_text()) if path.exists() else {"missing": f"see {name}.log"}
    for key, value in figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        rows.append(f"| {name}.{key} | {shown} |")
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
exit $status
