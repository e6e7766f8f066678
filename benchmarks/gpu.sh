#!/usr/bin/env bash
# The GPU benchmarks of issue 10, in one go (about 8 minutes of device time on an H100):
#   1. benchmarks/peers.py at batch 64 on VGG-16 and ResNet-50 (liecheck vs autograd;
#      Zennit / Captum only where they are installed);
#   2. benchmarks/faithfulness.py for every walkable method on VGG-16 and ResNet-50:
#      seconds per image of CSC, the cascade and random logit, as multiples of one
#      gradient pass, and the paper's full setting extrapolated to 200 images.
# Outputs go to $OUT (default benchmarks/gpu_out): peers.csv, faithfulness.json and
# the two logs. Run from anywhere:
#   bash benchmarks/gpu.sh             # on the GPU machine
#   bash benchmarks/gpu.sh --dry-run   # CPU, tiny settings: checks the script itself
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/gpu_out}
mkdir -p "$OUT"

if [ "${1:-}" = "--dry-run" ]; then
  DEVICE=cpu PEER_ARGS="--models resnet50 --batch 1 --methods gradient,lrp_a1b0 --repeats 1
    --warmup 0 --no-memory"
  FAITH_ARGS="--models cifar_net --n 2 --methods gradient,lrp_a1b0,deeplift_rescale"
  PEER_LIMIT=300 FAITH_LIMIT=300
else
  DEVICE=cuda PEER_ARGS="--models vgg16,resnet50 --batch 64 --repeats 3 --warmup 1"
  FAITH_ARGS="--models vgg16,resnet50,cifar_net --n 32 --batch-size 16 --methods walkable"
  PEER_LIMIT=200 FAITH_LIMIT=260
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
fi

# liecheck's own dependencies must be there; the peers are optional
$PY - <<'PY' || { echo "gpu.sh: missing a dependency of liecheck (see above)"; exit 2; }
import importlib, torch
for mod in ("numpy", "scipy", "pandas", "torchvision"):
    importlib.import_module(mod)
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY
PEERS=autograd,liecheck
for peer in zennit captum; do
  if $PY -c "import $peer" 2>/dev/null; then PEERS="$PEERS,$peer"; fi
done
echo "peers: $PEERS"

status=0
# shellcheck disable=SC2086  # the argument lists are meant to split
timeout "$PEER_LIMIT" $PY benchmarks/peers.py --device "$DEVICE" --peers "$PEERS" $PEER_ARGS \
  --out "$OUT/peers.csv" 2>&1 | tee "$OUT/peers.log" || status=1
# shellcheck disable=SC2086
timeout "$FAITH_LIMIT" $PY benchmarks/faithfulness.py --device "$DEVICE" $FAITH_ARGS \
  --out "$OUT/faithfulness.json" 2>&1 | tee "$OUT/faithfulness.log" || status=1
exit $status
