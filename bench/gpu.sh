#!/usr/bin/env bash
# GPU side-by-side: mmvae's wgpu backend against PyTorch CUDA eager on the
# same card (not run in CI). Needs a build with `--features vulkan` (or
# `wgpu`), a Vulkan driver for the card, and python3 with a CUDA PyTorch.
#
#   B=target/release/mmvae OUT=/tmp/gpu bench/gpu.sh [full]
#
# MLP_STEPS and CONV_STEPS set the timed steps (200 and 100); GPU_TEST names
# a test binary to run as well.
# Appends every measurement's output to $OUT/gpu.log and prints its last
# lines. With `full`, it then trains all of configs/shapes-l3.toml on the
# GPU (into $RUN, default /tmp/shapes-l3-gpu) and times it.
set -u
B=${B:-target/release/mmvae}
OUT=${OUT:-/tmp/mmvae-gpu}
mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd)

step() { # name, timeout (s), command...
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    local t0=$SECONDS
    echo "== $name: $*" >>"$OUT/gpu.log"
    timeout "$limit" "$@" >"$OUT/step.log" 2>&1
    local rc=$?
    grep -v XDG_RUNTIME_DIR "$OUT/step.log" >>"$OUT/gpu.log"
    grep -v XDG_RUNTIME_DIR "$OUT/step.log" | tail -n 4
    rm -f "$OUT/step.log"
    echo "   exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/gpu.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$B" devices
mlp=${MLP_STEPS:-200} conv=${CONV_STEPS:-100}
step bench-mlp-wgpu 120 "$B" bench --model mvae-mlp --steps "$mlp" --device wgpu
step bench-mlp-cuda 120 python3 "$here/torch_bench.py" --model mvae-mlp --steps "$mlp" --device cuda
step bench-conv-wgpu 120 "$B" bench --model conv-vae --steps "$conv" --device wgpu
step bench-conv-cuda 120 python3 "$here/torch_bench.py" --model conv-vae --steps "$conv" --device cuda
# The CPU-against-wgpu test binary of `cargo test --features wgpu --test gpu --no-run`.
if [ -n "${GPU_TEST:-}" ]; then
    step gpu-test 240 env MMVAE_REQUIRE_GPU=1 "$GPU_TEST"
fi
step shapes-epoch-cuda 180 python3 "$here/torch_shapes_epoch.py" --device cuda
if [ "${1:-}" = full ]; then
    step shapes-l3-wgpu "${FULL_LIMIT:-900}" "$B" train --config configs/shapes-l3.toml \
        --out "${RUN:-/tmp/shapes-l3-gpu}" --device wgpu
fi
