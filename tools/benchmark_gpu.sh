#!/usr/bin/env bash
# GPU benchmarks in one command, for a bare machine with one NVIDIA GPU.
#
#   bash tools/benchmark_gpu.sh [--device cuda|cpu] [--tiny] [--out DIR] [--fp32] [--steps A,B]
#   bash tools/benchmark_gpu.sh --fetch-wheels      # beforehand, where pip reaches PyPI
#
# Meant for a machine like the one the project can borrow: one H200, Python
# 3.12 with torch, torchvision, timm, transformers and onnxruntime, but no
# open_clip, mmengine, mmdet or mmcv, and no network. The packages it lacks
# travel as wheels in the ignored .whl/ folder of this checkout:
# `--fetch-wheels` downloads them there (pure-Python wheels, about 3 MB), and
# every run installs them into /tmp/site first when .whl/ holds any.
#
# What it measures (bfloat16 autocast; --fp32 for float32), about 3-5 minutes
# on a GPU, each step under its own time limit:
#   1. ViTamin-L-336 backbone on a 1344 px image at stride 112 (100 windows):
#      batched vs one window at a time, GFLOP per window and the achieved
#      TFLOP/s against a bf16 matrix product timed in the same run;
#   2. training-free segmentation with ViTamin-L-336 at 1344 px: s/img, peak memory;
#   3. FC-CLIP-L at 1344 px with the pure-PyTorch deformable attention (no
#      mmcv): s/img, peak memory and where the time goes;
#   4. OWL-L detection at 896 and 1344 px: s/img, peak memory;
#   5. the deformable attention's two PyTorch paths (gather, grid_sample) and
#      the decoder's mask prediction at 1344 px.
# --tiny runs the same steps on ViTamin-Tiny / the tiny FC-CLIP at 256 px
# (with --device cpu: the check that the script works, on any machine);
# --steps runs only some of backbone,training_free,fcclip,owl,heads.
#
# Results: DIR (default $OUT when set, else outputs/benchmark_gpu/) gets
# benchmark_gpu.txt (everything printed) and one JSON per step.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# what the GPU machine lacks, at the versions the project's environment uses
WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 mmengine==0.10.7 addict==2.4.0
        termcolor==3.3.0 yapf==0.43.0 platformdirs==4.14.9)
WHEEL_DIR="${WHEEL_DIR:-$REPO/.whl}"  # ignored by git
DEVICE=cuda
TINY=0
PRECISION=bf16
OUT_DIR="${OUT:-$REPO/outputs/benchmark_gpu}"
STEPS=backbone,training_free,fcclip,owl,heads

while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --fp32) PRECISION=fp32; shift ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --fetch-wheels)
      mkdir -p "$WHEEL_DIR"
      exec "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEEL_DIR" "${WHEELS[@]}" ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/benchmark_gpu.txt"
: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }
export PYTHONUNBUFFERED=1

# The missing packages, from the wheels carried along
if compgen -G "$WHEEL_DIR/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEEL_DIR"/*.whl || { say "error: installing $WHEEL_DIR failed"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PYTHON" -c 'import open_clip, mmengine' 2>/dev/null; then
  say "error: open_clip and mmengine are not importable: run 'bash tools/benchmark_gpu.sh" \
      "--fetch-wheels' where pip reaches PyPI, then bring the .whl/ folder along"
  exit 1
fi
"$PYTHON" - "$DEVICE" <<'EOF' 2>&1 | tee -a "$LOG"
import sys, platform, torch
device = sys.argv[1]
print(f'python {platform.python_version()}, torch {torch.__version__}, device {device}:',
      torch.cuda.get_device_name() if device.startswith('cuda') and torch.cuda.is_available()
      else platform.processor() or 'CPU')
if device.startswith('cuda') and not torch.cuda.is_available():
    sys.exit('error: --device cuda but torch sees no GPU (use --device cpu to check the script)')
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

if [ "$TINY" = 1 ]; then
  SIZE=256; BIG=ViTamin-Tiny; STRIDE=32; SEG=Tiny; DET_SIZES=256; QUERIES=16
else
  SIZE=1344; BIG=ViTamin-L-336; STRIDE=112; SEG=L; DET_SIZES=896,1344; QUERIES=250
fi
COMMON=(--device "$DEVICE" --precision "$PRECISION")
# the time limits are a GPU's; a CPU check gets more (BENCHMARK_GPU_TIME_SCALE overrides)
SCALE="${BENCHMARK_GPU_TIME_SCALE:-$([ "${DEVICE%%:*}" = cpu ] && echo 6 || echo 1)}"
FAILED=()

step() {  # step NAME LIMIT_SECONDS ARGS...: one benchmark, its output logged, its JSON kept
  local name="$1" limit="$2"; shift 2
  case ",$STEPS," in *",$name,"*) ;; *) return 0 ;; esac
  say ""
  say "=== $name: python tools/benchmark.py $*"
  local start=$SECONDS
  timeout "$((limit * SCALE))" "$PYTHON" "$REPO/tools/benchmark.py" "$@" \
    --json "$OUT_DIR/$name.json" \
    2>&1 | grep -v '^measuring ' | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say "($name: exit $rc, $((SECONDS - start)) s)"
  [ "$rc" -eq 0 ] || FAILED+=("$name")
}

step backbone 150 backbone --variants "$BIG" --size "$SIZE" --strides "$STRIDE" \
  --modes batched,loop --flops --matmul --repeats 3 --warmup 1 --large-size none "${COMMON[@]}"
step training_free 90 training_free --variants "$BIG" --size "$SIZE" --stride "$STRIDE" \
  --repeats 3 "${COMMON[@]}"
step fcclip 150 segmentation --variants "$SEG" --size "$SIZE" --impl pytorch --breakdown \
  --repeats 3 --warmup 1 --train-iters 0 "${COMMON[@]}"
step owl 120 detection --variants "$BIG" --sizes "$DET_SIZES" --repeats 3 "${COMMON[@]}"
step heads 90 heads --size "$SIZE" --queries "$QUERIES" --impls gather,grid_sample,mmcv \
  --repeats 3 "${COMMON[@]}"

say ""
if [ ${#FAILED[@]} -eq 0 ]; then
  say "all steps done in $SECONDS s; results in $OUT_DIR"
else
  say "steps that failed or ran out of time: ${FAILED[*]} (total $SECONDS s)"
  exit 1
fi
