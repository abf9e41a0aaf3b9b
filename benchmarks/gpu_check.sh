#!/usr/bin/env bash
# GPU check: on a CUDA machine with nothing but this repository, in under 8 minutes, into one folder:
#   install, per-step time and minutes/identity at 1000 steps for each fast-path option
#   (ffhq512-128 with random weights; random-weight LPIPS-VGG + IR-SE50), peak memory per memory
#   option, how many identities run at once on one GPU and their total throughput, and the real
#   engine with fractional-GPU actors (tiny backend: the ffhq backend needs the released weights).
#
#   benchmarks/gpu_check.sh [OUT]          OUT defaults to gpu-check-<UTC time>
#
# Environment:
#   GUIDE_RAY_PYTHON=/path/python   use this interpreter (must import torch with CUDA); default: a venv
#                                   .venv-gpu-check reusing the system torch (--system-site-packages)
#   GUIDE_RAY_GPU_CHECK_SMOKE=1     dry run anywhere (CPU too): tiny preset, 1 step, k in 1,2, no compile
#   GUIDE_RAY_GPU_CHECK_COMPILE=1   also time torch.compile (compiling ffhq512-128 can take minutes)
# Every stage has its own time limit; a stage that fails or times out is logged and the check goes on.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mkdir -p "${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}" && cd "${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}" && pwd)"
SMOKE="${GUIDE_RAY_GPU_CHECK_SMOKE:-0}"
exec < /dev/null > >(tee -a "$OUT/log.txt") 2>&1
START=$SECONDS
stage() { echo; echo "=== [$((SECONDS - START)) s] $*"; }

stage "install"
if [ -n "${GUIDE_RAY_PYTHON:-}" ]; then
  PY="$GUIDE_RAY_PYTHON"
elif [ "$SMOKE" = 1 ] && [ -x "$REPO/.venv/bin/python" ]; then
  PY="$REPO/.venv/bin/python"
else
  VENV="$REPO/.venv-gpu-check"
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
  PY="$VENV/bin/python"
  timeout -k 10 150 "$PY" -m pip install --quiet -e "$REPO" || echo "pip install failed; trying the checkout as it is"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PYEOF' | tee "$OUT/env.json"
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpu": torch.cuda.get_device_name(0) if cuda else None,
                  "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None},
                 indent=2))
PYEOF
command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt"

if [ "$SMOKE" = 1 ]; then
  PRESET=tiny; STEPS=1; K=1,2; NETS=standin
  DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
  OPTIONS=ours,fp32,bf16,channels_last,grad_checkpoint
  MEMORY=reference,ours,micro_batch=1
  [ "$DEVICE" = cuda ] && OPTIONS=$OPTIONS,tf32
else
  PRESET=ffhq512-128; STEPS=3; K=1,4,8; NETS=random-real; DEVICE=cuda
  OPTIONS=ours,fp32,tf32,bf16,channels_last,grad_checkpoint,micro_batch=1
  MEMORY=reference,ours,micro_batch=1,grad_checkpoint
  [ "${GUIDE_RAY_GPU_CHECK_COMPILE:-0}" = 1 ] && OPTIONS=$OPTIONS,compile
fi
BENCH=("$PY" -m guide_ray.cli bench)

stage "step time per option ($PRESET on $DEVICE, $STEPS steps each, alternating with the reference)"
timeout -k 10 120 "${BENCH[@]}" step --preset $PRESET --device $DEVICE --nets $NETS --steps $STEPS \
  --options $OPTIONS --out "$OUT/step" || echo "step benchmark failed or timed out"

stage "peak memory of one step per memory option (one process each)"
timeout -k 10 120 "${BENCH[@]}" memory --preset $PRESET --device $DEVICE --nets $NETS --options $MEMORY \
  --out "$OUT/memory" || echo "memory benchmark failed or timed out"

stage "identities at once on one GPU (k worker processes = k fractional-GPU actors)"
timeout -k 10 150 "${BENCH[@]}" concurrent --preset $PRESET --device $DEVICE --nets $NETS --steps $STEPS --k $K \
  --out "$OUT/concurrent" || echo "concurrency benchmark failed or timed out"

stage "the real engine with fractional-GPU actors (tiny backend, 2 identities per actor)"
GPUS_PER_ACTOR=0.25; ACTORS=1,4; IDS=8; ENGINE_LIMIT=120
[ "$SMOKE" = 1 ] && { GPUS_PER_ACTOR=0; ACTORS=1; IDS=1; ENGINE_LIMIT=300; }
cat > "$OUT/engine-job.yaml" <<YAML
# written by benchmarks/gpu_check.sh: the quickstart on $DEVICE with fractional-GPU actors
name: gpu-check
manifest: {generate: random, n: $IDS, seed: 0}
model: {backend: tiny}
variant: guide
guide: {iterations: 20, lr: 0.001}
metrics: [ID, FID_pre]
fid: {num_samples: 64, batch_size: 16}
output_dir: engine-unused
device: $DEVICE
resources: {gpus_per_actor: $GPUS_PER_ACTOR, cpus_per_actor: 1}
max_attempts: 1
YAML
timeout -k 10 $ENGINE_LIMIT "${BENCH[@]}" throughput --job "$OUT/engine-job.yaml" --actors $ACTORS --identities $IDS \
  --out "$OUT/engine" || echo "engine benchmark failed or timed out"

stage "summary"
"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/SUMMARY.md"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.is_file() else None
print(f"# GPU check ({out.name})\n")
env = load("env.json") or {}
print(f"GPU {env.get('gpu')}, torch {env.get('torch')}, CUDA {env.get('cuda')}\n")
step = load("step/step.json")
if step:
    print("| option | s/step | min/identity at 1000 steps | × vs reference |\n|---|---|---|---|")
    for name, v in step["variants"].items():
        print(f"| {name} | {v['median_s']:.3f} | {v['median_s'] * 1000 / 60:.2f} | {v['speedup_vs_reference']} |")
mem = load("memory/memory.json")
if mem:
    print("\n| memory option | micro_batch | CUDA peak GiB | peak RSS GiB | error |\n|---|---|---|---|---|")
    for r in mem["rows"]:
        print(f"| {r['option']} | {r.get('micro_batch')} | {r.get('cuda_peak_gib')} | {r.get('peak_rss_gib')} | {r.get('error', '')} |")
conc = load("concurrent/concurrent.json")
if conc:
    print("\n| identities at once | s/step each | min/identity | identities/hour total |\n|---|---|---|---|")
    for r in conc["runs"]:
        print(f"| {r['k']} | {r.get('median_s_per_step')} | {r.get('min_per_identity')} | {r.get('identities_per_hour')} |")
eng = load("engine/throughput.json")
if eng:
    print("\n| engine actors | identities/hour | engine overhead |\n|---|---|---|")
    for r in eng["runs"]:
        print(f"| {r['actors']} | {r['identities_per_hour']} | {r['engine_overhead']} |")
PYEOF
echo "total $((SECONDS - START)) s; everything is in $OUT"
