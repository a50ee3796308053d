#!/usr/bin/env bash
# The main job on an embedded default, offline: sets up the environment
# (idempotent) and runs the demo on the bundled sample photo.
#   bash tools/quickstart.sh [output directory]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
VENV="${VITAMIN_DENSE_VENV:-${VITAMIN_DENSE_HOME:-$HOME/.cache/vitamin-dense}/venv}"
OUT="${1:-$ROOT/outputs/quickstart}"
mkdir -p "$OUT"
cd "$ROOT"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
"$VENV/bin/python" demo/segment.py --random-init --model ViTamin-Tiny --vocab "cat,grass,sky" \
  --out "$OUT/segment_sample.png"
