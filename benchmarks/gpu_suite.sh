#!/usr/bin/env bash
# Every GPU figure the project owes, measured in one go and written to one file (summary.md):
#   train          4-stack hourglass, 256 px, batch 32, bf16, channels_last, eager: model-only vs
#                  end-to-end img/s, loader-only img/s, eval img/s with flip test, peak GPU memory
#                  and host PSS (benchmarks/train_throughput.py)
#   train_compile  the same with torch.compile (model-only vs end-to-end; no eval pass)
#   human_sb50     SimpleBaseline-R50 top-down, 256x192, batch 32, bf16: model-only vs
#                  end-to-end img/s on 640x480 COCO-layout JPEGs, eval img/s with flip test
#   human_hrnet32  the same for HRNet-W32
#   pseudo_labels  ms/img at batch 32 with 5 views (4 random + identity) and Lucas-Kanade flow,
#                  bf16, peak GPU memory and host RSS (benchmarks/pseudo_label_throughput.py)
#   generator_pN   datasets/generate.py img/s with N = 1 and 4 processes, 60 images; the 'dog'
#                  renderer when headless OpenGL works here, else 'flat' (the summary says which)
#
#   bash benchmarks/gpu_suite.sh [--dry-run] [OUT_DIR]
#
# Time budget (each step's hard limit, seconds; a step past it is killed, the suite goes on and
# keeps the figures it wrote): train 115 (incl. writing 1024 training images) + train_compile 100
# (incl. compiling) + human_sb50 55 (incl. writing 400 images) + human_hrnet32 55 +
# pseudo_labels 75 + generator_p1 30 + generator_p4 20 = 450 s, plus the renderer probe (at most
# 20 s) and a few seconds of set-up and summary: under 8 minutes (480 s).
# --dry-run runs every step for a few iterations at tiny sizes (on the CPU without CUDA) to check
# the script and the summary. OUT_DIR defaults to $OUT (the device tool's output folder) or
# benchmarks/results/gpu-<time>; it receives env.txt, one <step>.log (and .json) per step and
# summary.md (copy its table into docs/benchmarks.md with the date and the card). Runs from the
# working tree without pip: the GPU host has torch but no network, so the four folders are
# linked into a temporary `animalpose` package when it is not installed. Environment: PYTHON
# (default python3), DEVICE (default cuda; cpu in a dry run without CUDA), WORKERS.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
if [ "${1:-}" = --dry-run ]; then
    DRY_RUN=1
    shift
fi
case "${1:-}" in
-*)
    echo "usage: bash benchmarks/gpu_suite.sh [--dry-run] [OUT_DIR] (unknown option $1)" >&2
    exit 2
    ;;
esac
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
CORES=$(nproc)
WORKERS=${WORKERS:-$((CORES > 3 ? CORES - 2 : 1))}

if ! "$PY" -c "import animalpose.datasets" 2>/dev/null; then
    shim=$(mktemp -d)
    mkdir -p "$shim/animalpose"
    for folder in datasets train adapt evaluation; do ln -s "$PWD/$folder" "$shim/animalpose/$folder"; done
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$DRY_RUN" = 1 ]; then
    has_cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null)
    DEVICE=${DEVICE:-$([ "$has_cuda" = 1 ] && echo cuda || echo cpu)}
    LIMITS=(120 120 120 60 60 120 120)
    TRAIN_SIZE=(--stacks 1 --channels 16 --inp-res 64 --batch 4 --num-images 24 --iters 2
        --warmup 1)
    PSEUDO_SIZE=(--stacks 1 --channels 16 --inp-res 64 --out-res 16 --batch 4 --shots 2
        --frames-per-shot 4 --frame-size 160 120 --repeat 1)
    GEN_SIZE=(--source-images 2 --size 160x120)
    GEN_PROCESSES=(1 2)
    HUMAN_SIZE=(--inp-res 64 --inp-width 64 --depth 18 --batch 4 --num-images 8 --iters 2
        --warmup 1)
else
    DEVICE=${DEVICE:-cuda}
    LIMITS=(115 100 75 30 20 55 55)  # the budget in the header: keep both in step
    TRAIN_SIZE=(--stacks 4 --batch 32 --num-images 1024 --iters 60 --warmup 10)
    PSEUDO_SIZE=(--stacks 4 --batch 32 --shots 16 --frames-per-shot 50 --frame-size 640 360
        --repeat 2)
    GEN_SIZE=(--source-images 60)
    GEN_PROCESSES=(1 4)
    HUMAN_SIZE=(--inp-res 256 --inp-width 192 --depth 50 --batch 32 --num-images 400 --iters 40
        --warmup 5)
fi
AMP=()
[ "$DEVICE" = cpu ] || AMP=(--amp)  # bf16 autocast is a CUDA option of the pseudo-label script
# Inductor needs minutes on a small CPU: a dry run there checks the compile step's plumbing only.
COMPILE_ENV=(TORCH_LOGS=recompiles)  # the log says whether a shape change recompiled
COMPILE_NOTE="torch.compile: on (recompiles logged in train_compile.log)"
if [ "$DRY_RUN" = 1 ] && [ "$DEVICE" = cpu ]; then
    COMPILE_ENV+=(TORCH_COMPILE_DISABLE=1)
    COMPILE_NOTE="torch.compile: DISABLED (dry run on the CPU, TORCH_COMPILE_DISABLE=1)"
fi

# The generator's renderer: the 3-D dog needs dm-control/mujoco and headless OpenGL.
if timeout 20 "$PY" -c "from animalpose.datasets.generator.renderer import RENDERERS; RENDERERS['dog'](True)" \
    > "$OUT_DIR/renderer_probe.log" 2>&1; then
    RENDERER=dog
else
    RENDERER=flat
fi

{
    date -u +"%Y-%m-%d %H:%M UTC"
    echo "cores: $CORES, loader workers: $WORKERS, device: $DEVICE, dry run: $DRY_RUN"
    echo "generator renderer: $RENDERER"
    echo "$COMPILE_NOTE"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

status=0
: > "$OUT_DIR/steps.tsv"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, keep going on failure
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s of $limit (log: $OUT_DIR/$name.log)"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$limit" >> "$OUT_DIR/steps.tsv"
    [ $rc -eq 0 ] || status=1
}

DATA="$OUT_DIR/synthetic_data"
TRAIN=("$PY" benchmarks/train_throughput.py --device "$DEVICE" --workers "$WORKERS"
    "${TRAIN_SIZE[@]}" --data-root "$DATA")
step train "${LIMITS[0]}" "${TRAIN[@]}" --flip --json "$OUT_DIR/train.json"
step train_compile "${LIMITS[1]}" env "${COMPILE_ENV[@]}" "${TRAIN[@]}" --compile --no-eval \
    --json "$OUT_DIR/train_compile.json"
rm -rf "$DATA"
HUMANS="$OUT_DIR/human_data"
HUMAN=("$PY" benchmarks/train_throughput.py --human --device "$DEVICE" --workers "$WORKERS"
    "${HUMAN_SIZE[@]}" --data-root "$HUMANS" --flip)
[ "$DEVICE" = cpu ] && HUMAN+=(--cpu-amp)
step human_sb50 "${LIMITS[5]}" "${HUMAN[@]}" --arch simple_baseline --json "$OUT_DIR/human_sb50.json"
step human_hrnet32 "${LIMITS[6]}" "${HUMAN[@]}" --arch hrnet --width 32 \
    --json "$OUT_DIR/human_hrnet32.json"
rm -rf "$HUMANS"
step pseudo_labels "${LIMITS[2]}" "$PY" benchmarks/pseudo_label_throughput.py --device "$DEVICE" \
    --workers "$WORKERS" --views 4 "${PSEUDO_SIZE[@]}" "${AMP[@]}" \
    --json "$OUT_DIR/pseudo_labels.json"
for i in 0 1; do
    processes=${GEN_PROCESSES[$i]}
    step "generator_p$processes" "${LIMITS[$((3 + i))]}" "$PY" datasets/generate.py \
        --image-path "$OUT_DIR/generated_p$processes" --renderer "$RENDERER" \
        --processes "$processes" --target-shots 0 "${GEN_SIZE[@]}" --no-progress
    rm -rf "$OUT_DIR/generated_p$processes"
done

"$PY" - "$OUT_DIR" "$RENDERER" <<'EOF'
import json, sys
from pathlib import Path

out, renderer = Path(sys.argv[1]), sys.argv[2]
env = (out / "env.txt").read_text().splitlines()
rows = [f"# GPU suite ({env[0]})", "", *[f"    {line}" for line in env[1:]], "",
        "| figure | value |", "| --- | --- |"]
steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]


def figures_of(name: str) -> dict:
    if name.startswith("generator_"):  # the generator prints its JSON summary last
        lines = (out / f"{name}.log").read_text(errors="replace").splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{")]
        if not found:
            return {}
        fig = {"renderer": renderer, "processes": int(name.removeprefix("generator_p")),
               **found[-1]}
        fig["images_per_s_per_process"] = round(fig["images_per_s"] / fig["processes"], 2)
        return fig
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


peak_gpu, peak_host = [], []
for name, rc, seconds, limit in steps:
    rows.append(f"| {name}.exit | {'ok' if rc == '0' else f'FAILED rc={rc}'} ({seconds} of "
                f"{limit} s) |")
    figures = figures_of(name)
    if not figures:
        rows.append(f"| {name} | missing: see {name}.log |")
    for key, value in figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        rows.append(f"| {name}.{key} | {shown} |")
    gpu = figures.get("peak_gpu_mem_gb", figures.get("peak_gpu_mib", 0) / 1024)
    peak_gpu.append(gpu or 0.0)
    host = figures.get("peak_host_pss_gb_all_processes",
                       figures.get("peak_rss_main_mib", 0) / 1024)
    peak_host.append(host or 0.0)
rows.append(f"| peak.gpu_mem_gb (all steps) | {max(peak_gpu, default=0):.2f} |")
rows.append(f"| peak.host_gb (all steps) | {max(peak_host, default=0):.2f} |")
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
exit $status
