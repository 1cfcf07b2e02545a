#!/usr/bin/env bash
# kdbench's speed on a GPU in one go (about 8 minutes on one H200 before the steps of speed at
# scale, which add up to 20 more: ONLY=compile, say, runs just the steps whose title has that word):
# training against a bare loop (fp32 and bf16), clean scoring and AutoAttack against pyautoattack
# called directly, adversarial training's cost, the 15 corruptions x 5 severities x 10k test
# images; several students at once (--jobs, Ray), compile off against on, and the flagship's
# estimate and a slice of it extrapolated.
#
#   scripts/bench_gpu.sh prepare DATA_ROOT [DIR]   # here: a compact copy of the data (+ model), ~55 MB
#   scripts/bench_gpu.sh run [DIR] [LOG]           # there: unpack, run everything, log to LOG
#
# DIR (default .gpu) holds what the GPU machine needs beside the repository: the data as one xz
# stream (scripts/compact_cifar.py), an fp16 copy of pyautoattack's CIFAR-10 ResNet-18 for
# AutoAttack, and pyautoattack's code without its 45 MB example model. DEVICE=cpu and smaller
# N_TRAIN, EPOCHS, AA_N, CORR_N let the same script be tried on a CPU first; ONLY=smoke runs
# only the steps whose title has that word.
set -uo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-run}
dir=${2:-.gpu}

if [ "$cmd" = prepare ]; then
    root=${2:?usage: bench_gpu.sh prepare DATA_ROOT [DIR]}
    dir=${3:-.gpu}
    set -e
    python scripts/compact_cifar.py make --data-root "$root" --out "$dir" --n-train "${N_TRAIN:-4000}" \
        --model pkg:pyautoattack/examples/model_test.pt
    src=$(python -c "import pyautoattack, os; print(os.path.dirname(pyautoattack.__file__))")
    mkdir -p "$dir/site/pyautoattack"
    cp "$src"/*.py "$dir/site/pyautoattack/"
    du -sh "$dir"
    exit 0
fi

log=${3:-/dev/null}
device=${DEVICE:-cuda}
export PYTHONPATH="$PWD:$PWD/$dir/site${PYTHONPATH:+:$PYTHONPATH}" KDBENCH_PROGRESS=0 PYTHONUNBUFFERED=1
data=${TMPDIR:-/tmp}/kdbench_cifar10
step() {  # a title, a time limit in seconds, then the command; one failing step does not stop the rest
    local title=$1 limit=$2
    shift 2
    case "$title" in unpack*|*"${ONLY:-}"*) ;; *) return ;; esac  # ONLY=WORD: just the steps whose title has WORD
    echo
    echo "=== $title"
    local t0=$SECONDS
    timeout "$limit" "$@"
    echo "--- exit $? after $((SECONDS - t0)) s"
}
{
    date -u
    [ "$device" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
    step "unpack the data" 60 python scripts/compact_cifar.py unpack "$dir" "$data"
    step "training: kdbench's loop against a bare loop" 240 python scripts/bench_train.py --data-root "$data" \
        --device "$device" --arch resnet20 wrn_40_2 --methods baseline kd --precision fp32 bf16 \
        --n "${N_TRAIN:-4000}" --epochs "${EPOCHS:-2}" --repeats 3
    step "training, cudnn.benchmark on (--nondeterministic)" 60 python scripts/bench_train.py --data-root "$data" \
        --device "$device" --arch resnet20 wrn_40_2 --methods baseline --precision fp32 bf16 \
        --n "${N_TRAIN:-4000}" --epochs "${EPOCHS:-2}" --repeats 3 --nondeterministic
    step "adversarial training's cost" 120 python scripts/bench_adv_training.py --data-root "$data" \
        --device "$device" --arch resnet20 --teacher-arch resnet56 --n "${ADV_N:-2000}" --steps 10
    step "clean scoring against bare forward passes" 60 python scripts/bench_eval_overhead.py --data-root "$data" \
        --device "$device" --arch resnet20 --n "${CORR_N:-10000}" --batch-size 500 --repeats 5
    step "AutoAttack (standard) against pyautoattack called directly" 150 python scripts/bench_eval_overhead.py \
        --data-root "$data" --device "$device" --arch resnet18 --checkpoint "$dir/model_fp16.pt" \
        --n "${AA_N:-2000}" --batch-size 500 --attack autoattack --repeats 1
    step "corruptions: 15 x 5 severities" 120 python scripts/bench_corruptions.py --data-root "$data" \
        --device "$device" --n "${CORR_N:-10000}" --target 30
    step "several students at once: --jobs N and Ray's fractional GPUs" 400 python scripts/bench_scale.py jobs \
        --data-root "$data" --device "$device" --counts 1 2 4 8 --n "${N_TRAIN:-4000}" --epochs "${EPOCHS:-2}"
    step "compile off against on: the training step" 300 python scripts/bench_scale.py compile --device "$device" \
        --arch resnet20 wrn_40_2 --batch-size 64 128 --n "${N_TRAIN:-4000}" --epochs "${EPOCHS:-2}"
    step "compile off against on: AutoAttack on a student" 200 python scripts/bench_scale.py autoattack \
        --device "$device" --arch resnet20 --n "${AA_N:-2000}" --batch-size 500
    step "the flagship: dry-run estimate, and a 1-seed 10-epoch slice extrapolated" 420 python scripts/bench_scale.py \
        flagship --data-root "$data" --device "$device" --epochs "${FLAGSHIP_EPOCHS:-10}" \
        --train-images "${N_TRAIN:-4000}" -- --set dataset.download=false
    # the whole pipeline on the device, twice from scratch: the same numbers both times?
    for i in 1 2; do
        step "smoke suite end to end, run $i" 240 python -m kdbench run suites/smoke.yaml --data-root "$data" --device "$device" \
            --set "teachers.resnet18.checkpoint=$PWD/$dir/model_fp16.pt" --out "${TMPDIR:-/tmp}/kdbench_smoke$i" --force
    done
    step "the two smoke runs compared" 30 python - "${TMPDIR:-/tmp}" <<'PY'
import sys, pathlib, pandas as pd, numpy as np
runs = [pathlib.Path(sys.argv[1]) / f"kdbench_smoke{i}" / "smoke" / "latest" for i in (1, 2)]
a, b = (pd.read_csv(r / "metrics.csv") for r in runs)
print(a.groupby(["model", "condition"])["accuracy"].mean().unstack().round(4).to_string())
same = a.equals(b)
pa, pb = (np.load(r / "per_example.npz") for r in runs)
print("metrics.csv identical:", same, "| per_example identical:", all(np.array_equal(pa[k], pb[k]) for k in pa.files))
if not same:
    print("max |accuracy difference|:", float((a["accuracy"] - b["accuracy"]).abs().max()))
PY
    date -u
} 2>&1 | tee "$log"
