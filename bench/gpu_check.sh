#!/usr/bin/env bash
# One call on a CUDA machine: what the GPU does to this project, printed in one log.
#
#   bench/gpu_check.sh                      # on a machine with torch, torchvision and a GPU
#   bench/gpu_check.sh --fetch-wheels .whl  # beforehand, on a machine with an index: the pure-Python
#                                           # packages the app and its tests need, for a GPU box that
#                                           # has torch but cannot reach an index (carry .whl there)
#
# 1. the device, torch and its CUDA build;
# 2. the test suite with the tests marked `cuda` enabled (DLC_TEST_CUDA=1: no GPU is an error);
# 3. the convolutional-networks lesson's default run on --device cuda, through `dlc run`, timed;
# 4. bench/bench_fast_cifar.py --device cuda (trainer vs a bare loop; CIFAR-10 with DATA_DIR set,
#    else the embedded shapes) and bench/bench_trainer.py --device cuda.
# Each step's exit code is printed; the script goes on after a failure and exits non-zero at the end.
# LOG_DIR (default: $OUT if set, else ./bench/out) receives gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(textual pytest-asyncio pytest-textual-snapshot syrupy mdit-py-plugins platformdirs)
if [[ "${1:-}" == "--fetch-wheels" ]]; then
    dir="${2:-.whl}"
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform any -d "$dir" "${WHEELS[@]}"
    exit $?
fi

PY=${PYTHON:-python3}
if ! $PY -c "import textual, pytest_asyncio" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dlc-site .whl/*.whl \
        && export PYTHONPATH="/tmp/dlc-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export DLC_HOME="$(mktemp -d)" XDG_CACHE_HOME="$(mktemp -d)"
LOG_DIR=${LOG_DIR:-${OUT:-bench/out}}
mkdir -p "$LOG_DIR"
LOG="$LOG_DIR/gpu_check.log"
: >"$LOG"
failed=0

step() {  # step NAME COMMAND...: run it, its output into the log, its time and exit code after it
    local name=$1; shift
    echo "=== $name: $*" | tee -a "$LOG"
    local t0=$(date +%s%N)
    "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '=== %s: exit %s in %d.%d s\n\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$LOG"
    [[ $rc -eq 0 ]] || failed=1
}

step device $PY - <<'EOF'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"cudnn {torch.backends.cudnn.version()}")
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device visible to torch")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, "
          f"capability {p.major}.{p.minor}, bf16 {torch.cuda.is_bf16_supported()}")
EOF
if [[ $failed -ne 0 ]]; then echo "gpu_check: no GPU here, nothing more to check" | tee -a "$LOG"; exit 1; fi
step tests env DLC_TEST_CUDA=1 $PY -m pytest -q -p no:cacheprovider -x --durations=15
step lesson $PY -m dlcourse_tui.cli run convolutional-networks --device cuda --json
fast=(--device cuda)
[[ -n "${DATA_DIR:-}" ]] && fast+=(--data-dir "$DATA_DIR")
step fast_cifar $PY bench/bench_fast_cifar.py "${fast[@]}"
step trainer $PY bench/bench_trainer.py --device cuda --rounds 3
echo "gpu_check: $([[ $failed -eq 0 ]] && echo all steps passed || echo SOME STEPS FAILED); log in $LOG"
exit $failed
