#!/usr/bin/env bash
# Idempotent environment set-up for vitamin-dense.
#
# Creates (once) a virtual environment outside the checkout, installs the
# matched torch/torchvision pair from the package registry, the core and
# OpenMMLab requirements, and mmcv 2.1.0 built with its compiled ops. The
# built mmcv wheel is cached, so a second set-up on the same machine takes
# seconds. A stamp of the requirement files decides whether anything must be
# (re)installed; the package itself is always (re)installed in editable mode
# from the current checkout.
#
# Usage:  source <(bash tools/setup_env.sh --print-env)   # or
#         bash tools/setup_env.sh [--core-only]
# Environment:
#   VITAMIN_DENSE_HOME  cache root (default: ~/.cache/vitamin-dense)
#   VITAMIN_DENSE_VENV  virtual environment (default: $VITAMIN_DENSE_HOME/venv)
#   PYTHON              interpreter used to create the venv (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${VITAMIN_DENSE_HOME:-$HOME/.cache/vitamin-dense}"
VENV="${VITAMIN_DENSE_VENV:-$HOME_DIR/venv}"
WHEELS="$HOME_DIR/wheels"
PYTHON="${PYTHON:-python3}"
CORE_ONLY=0
PRINT_ENV=0
for arg in "$@"; do
  case "$arg" in
    --core-only) CORE_ONLY=1 ;;
    --print-env) PRINT_ENV=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[setup] $*" >&2; }

# pip must not read this machine's pip config: it offers a CPU-only torch
# wheel that does not match the registry's torchvision (see docs/ARCHITECTURE.md, "Design notes").
PIP=("$VENV/bin/python" -m pip --isolated --disable-pip-version-check)

mkdir -p "$HOME_DIR" "$WHEELS"
exec 9>"$HOME_DIR/setup.lock"
flock 9

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment at $VENV"
  "$PYTHON" -m venv "$VENV"
  "${PIP[@]}" install -q --upgrade pip
fi

want_stamp="$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16)-core${CORE_ONLY}"
have_stamp="$(cat "$VENV/.vitamin_dense_stamp" 2>/dev/null || true)"
full_stamp="$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16)-core0"

if [ "$have_stamp" != "$want_stamp" ] && [ "$have_stamp" != "$full_stamp" ]; then
  C=(-c "$ROOT/requirements/constraints.txt")
  log "installing torch/torchvision (matched pair) and core requirements"
  "${PIP[@]}" install -q "${C[@]}" "setuptools<81" wheel -r "$ROOT/requirements/core.txt" -r "$ROOT/requirements/tests.txt"
  if [ "$CORE_ONLY" = 0 ]; then
    log "installing OpenMMLab requirements"
    "${PIP[@]}" install -q "${C[@]}" "setuptools<81" wheel ninja
    mmcv_wheel="$(ls "$WHEELS"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)"
    torch_tag="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
    if [ -z "$mmcv_wheel" ] || [ ! -f "$WHEELS/mmcv.torch-$torch_tag" ]; then
      log "building mmcv 2.1.0 with compiled ops against torch $torch_tag (once; about 10 min on 2 cores)"
      rm -f "$WHEELS"/mmcv-2.1.0-*.whl "$WHEELS"/mmcv.torch-*
      MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$WHEELS" "mmcv==2.1.0"
      touch "$WHEELS/mmcv.torch-$torch_tag"
      mmcv_wheel="$(ls "$WHEELS"/mmcv-2.1.0-*.whl | head -n1)"
    fi
    "${PIP[@]}" install -q "${C[@]}" "$mmcv_wheel"
    "${PIP[@]}" install -q "${C[@]}" -r "$ROOT/requirements/openmmlab.txt"
    # panopticapi-lite pins numpy<2 although it works with numpy 2.
    "${PIP[@]}" install -q --no-deps panopticapi-lite
  fi
  echo "$want_stamp" > "$VENV/.vitamin_dense_stamp"
else
  log "requirements already installed in $VENV"
fi

# The package itself: editable install of this checkout (fast, no deps).
installed_root="$(cd / && "$VENV/bin/python" -c 'import vitamin_dense, os; print(os.path.dirname(os.path.dirname(vitamin_dense.__file__)))' 2>/dev/null || true)"
if [ "$installed_root" != "$ROOT" ]; then
  log "installing vitamin_dense from $ROOT (editable)"
  pip_log="$HOME_DIR/editable-install.log"
  if ! "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT" > "$pip_log" 2>&1; then
    cat "$pip_log" >&2
    log "error: the editable install of $ROOT failed (log above, also in $pip_log)"
    exit 1
  fi
fi

if [ "$PRINT_ENV" = 1 ]; then
  echo "export VIRTUAL_ENV='$VENV'; export PATH='$VENV/bin':\"\$PATH\""
else
  log "ready: $VENV"
fi
