#!/usr/bin/env bash
# GPU smoke check: extract + FaceNet on a generated corpus with configs/gpu.yaml, both on GPU
# fractions, then faces/s, the peak GPU memory used and the mean GPU utilisation. Installs
# nothing: it needs a Python whose TensorFlow sees the GPU and which has this project installed,
# by default the .venv that `make setup EXTRAS=gpu,test` (tensorflow[and-cuda]) builds while the
# registry is reachable.
#   [PY=/path/to/python] bash benchmarks/gpu_smoke.sh [IDENTITIES]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${1:-60}
work=$(mktemp -d)
trap 'kill "${sampler:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: not a GPU machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$PY" - <<'PYEOF' || { echo "TensorFlow in .venv sees no GPU: build it with EXTRAS=gpu,test" >&2; exit 2; }
import tensorflow as tf
assert tf.config.list_physical_devices("GPU"), "no GPU visible to TensorFlow"
print("TensorFlow", tf.__version__, "GPUs:", tf.config.list_physical_devices("GPU"))
PYEOF

"$PY" - "$work" "$N" <<'PYEOF'
import sys
from fakeface_ray.demo import build_demo_corpus
from fakeface_ray.stages.embedders.facenet import build_inception_resnet_v1, model_weights
from fakeface_ray.stages.embedders.facenet_weights import write_weight_file
build_demo_corpus(sys.argv[1] + "/data", seed=0, variants=2, identities=int(sys.argv[2]))
write_weight_file(sys.argv[1] + "/facenet.h5", model_weights(build_inception_resnet_v1(128)), "keras2-weights")
PYEOF

( while true; do nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits; sleep 0.5
  done ) > "$work/gpu.log" &
sampler=$!
start=$(date +%s.%N)
"$PY" -m fakeface_ray.cli extract --config configs/gpu.yaml --infile "$work/data/real_and_fake_face" --out "$work/out" \
  --set embed.embedder=facenet --set "embed.weights=$work/facenet.h5" --set embed.num_gpus=0.25 \
  --set embed.batch_size=128 > "$work/extract.log" 2>&1 \
  || { tail -40 "$work/extract.log"; exit 1; }
end=$(date +%s.%N)
kill "$sampler"
"$PY" - "$work" "$start" "$end" <<'PYEOF'
import json, sys
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
run = json.load(open(f"{work}/out/run.json"))
ok = run["counts_by_status"].get("ok", 0)
pipeline_s = run["timings"]["extract_embed_write_s"]
samples = [[int(v) for v in line.split(",")] for line in open(f"{work}/gpu.log")
           if line.replace(",", "").split() and all(v.strip().isdigit() for v in line.split(","))]
peak = max(memory for memory, _ in samples)
busy = sum(use for _, use in samples) / len(samples)
print(f"images {run['n_inputs']}, faces embedded {ok}, embedder {run['embedder']}")
print(f"wall {end - start:.1f} s (process), pipeline {pipeline_s:.1f} s -> {ok / pipeline_s:.1f} faces/s")
print(f"plan {json.dumps(run['plan'])}")
print(f"peak GPU memory used {peak} MiB, mean GPU utilisation {busy:.0f}% over {len(samples)} samples")
PYEOF
