#!/usr/bin/env bash
# Make the project venv (.venv) a ROS 2 prefix with PyTorch, and build our interfaces into it.
# Idempotent: each stage is skipped when the hash of its inputs has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${DYNOFA_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
STAMPS=$VENV/.dynofa-stamps

stage_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
up_to_date() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating venv $VENV ($($PY --version))"
  "$PY" -m venv "$VENV"
fi

h=$(stage_hash requirements.txt setup.py)
if ! up_to_date pip "$h"; then
  echo "[setup] installing pinned packages (first time: ~2 min; torch installs from this disk)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e . 2>&1 | grep -vE "^ *(\*|!!|$)|editable|setuptools|mode = " || true
  mark pip "$h"
fi

# The ROS wheels' CMake exports carry the include dirs of the machine that built them
# (/opt/python/cp3XX-cp3XX/...); point them at this venv's Python and numpy.
h=$(stage_hash requirements.txt scripts/setup_env.sh)
if ! up_to_date fixup "$h"; then
  py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  echo "[setup] rewriting wheel CMake include paths -> $py_inc, $np_inc"
  { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' || true; } | while read -r f; do
    sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_inc#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_inc#g" "$f"
  done
  mark fixup "$h"
fi

h=$(stage_hash CMakeLists.txt package.xml msg/*.msg requirements.txt)
if ! up_to_date interfaces "$h"; then
  echo "[setup] building dynofa_ros interfaces into $VENV"
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
  export PATH=$VENV/bin:$PATH
  rm -rf build/interfaces; mkdir -p build
  cmake -S . -B build/interfaces -DDYNOFA_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
    -DCMAKE_BUILD_TYPE=Release >build/interfaces.log 2>&1 \
    || { tail -40 build/interfaces.log; exit 1; }
  cmake --build build/interfaces -j "$(nproc)" >>build/interfaces.log 2>&1 \
    || { tail -40 build/interfaces.log; exit 1; }
  cmake --install build/interfaces >>build/interfaces.log 2>&1 || { tail -40 build/interfaces.log; exit 1; }
  mark interfaces "$h"
fi

# The ROS 2 launch tools (launch, launch_ros, ros2cli; not on PyPI) for the test that runs the installed package
# with `ros2 launch`: wheels built from upstream, plus composition_interfaces built like our interfaces. Taken
# from $DYNOFA_ROS2_LAUNCH, else ../shared/ros2-launch beside the checkout; without them that test skips.
LAUNCH_TOOLS=${DYNOFA_ROS2_LAUNCH:-$ROOT/../shared/ros2-launch}
if [ -d "$LAUNCH_TOOLS/wheels" ] && [ -d "$LAUNCH_TOOLS/composition_interfaces" ]; then
  h=$(stage_hash "$LAUNCH_TOOLS"/wheels/*.whl "$LAUNCH_TOOLS"/composition_interfaces/srv/*.srv requirements.txt)
  if ! up_to_date launch_tools "$h"; then
    echo "[setup] installing the ROS 2 launch tools from $LAUNCH_TOOLS (for the installed-package test)"
    "$VENV/bin/python" -m pip install -q --no-deps "$LAUNCH_TOOLS"/wheels/*.whl
    export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
    rm -rf build/composition_interfaces; mkdir -p build
    { cmake -S "$LAUNCH_TOOLS/composition_interfaces" -B build/composition_interfaces -DBUILD_TESTING=OFF \
        -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release \
      && cmake --build build/composition_interfaces -j "$(nproc)" && cmake --install build/composition_interfaces
    } >build/composition_interfaces.log 2>&1 || { tail -40 build/composition_interfaces.log; exit 1; }
    mark launch_tools "$h"
  fi
fi

"$VENV/bin/python" -c 'from dynofa_ros.msg import PerformanceReport' \
  || { echo "[setup] the built interfaces do not import" >&2; exit 1; }
