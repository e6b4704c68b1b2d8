#!/usr/bin/env bash
# Save and resume at SmolLM2-135M's size (540 MB of weights, 1.1 GB of MoClip state), with a real
# crash: SmolLM2 records sets over a few KB of text, then one replay run goes straight through
# and a second is SIGKILLed at a random moment after its first checkpoint (possibly while it
# writes the next one) and started again. The resumed run must end bit-identical to the straight
# one: weights, optimizer state and trainer state. Opt-in (make check-large): about 3 minutes.
# Usage: scripts/check-large-resume.sh [MODEL_DIR] (default models/smollm2/base, from make model +
# logit-train import-gguf); BIN=.build/release by default; SEED for the kill moment.
set -euo pipefail
model=${1:-models/smollm2/base}
bin=${BIN:-.build/release}
seed=${SEED:-$RANDOM}
[ -f "$model/model.safetensors" ] || { echo "check-large-resume: $model has no model.safetensors (make model, then logit-train import-gguf)" >&2; exit 1; }
work=${KEEP:-$(mktemp -d)}; [ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
head -c 12000 /usr/share/common-licenses/GPL-3 > "$work/text.txt"
"$bin/logit-teach" --model "$model" --corpus "$work/text.txt" --cache "$work/cache" --dataset gpl >/dev/null
args=(replay --cache "$work/cache" --dataset gpl --init "$model" --steps 6 --warmup 1
      --batch-tokens 256 --seq-len 128 --checkpoint-every 2 --eval-every 0 --eval-tokens 256)
"$bin/logit-train" "${args[@]}" --out "$work/straight" >/dev/null 2>&1

# The kill comes 0–3 s after the first checkpoint is complete (the next one is written about 3 s later).
delay=$(awk -v s="$seed" 'BEGIN { srand(s); printf "%.2f", rand() * 3 }')
echo "check-large-resume: seed $seed, SIGKILL ${delay}s after the first checkpoint"
# Started directly, so that $! is logit-train itself and the SIGKILL reaches it.
"$bin/logit-train" "${args[@]}" --out "$work/broken" >/dev/null 2>&1 &
pid=$!
until [ -f "$work/broken/checkpoint/trainer.json" ]; do
  kill -0 "$pid" 2>/dev/null || { echo "check-large-resume: the run ended before its first checkpoint" >&2; exit 1; }
  sleep 0.1
done
sleep "$delay"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
killed_at=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$work/broken/checkpoint/trainer.json")
echo "check-large-resume: killed; the checkpoint on disk is at step $killed_at"
"$bin/logit-train" "${args[@]}" --out "$work/broken" > "$work/resume.log" 2>&1 || { echo "check-large-resume: the resumed run failed:" >&2; tail -5 "$work/resume.log" >&2; exit 1; }

status=0
# Each save draws a new checkpoint_id (safetensors metadata, config.json) and the elapsed time
# differs; every other byte must not.
python3 - "$work/straight/checkpoint" "$work/broken/checkpoint" <<'PY' || status=1
import hashlib, json, struct, sys

def canonical(directory: str, name: str) -> str:
    path = f"{directory}/{name}"
    if name == "model.safetensors":
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            header.get("__metadata__", {}).pop("tinylm.checkpoint_id", None)
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 24), b""):
                digest.update(chunk)
        return json.dumps(header, sort_keys=True) + digest.hexdigest()
    if name == "optimizer.state":
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    data = json.load(open(path))
    for key in ("elapsedSeconds", "checkpoint_id"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)

failed = False
for name in ("model.safetensors", "optimizer.state", "trainer.json", "config.json"):
    same = canonical(sys.argv[1], name) == canonical(sys.argv[2], name)
    print(f"  {name}: {'identical' if same else 'DIFFERS'}")
    failed |= not same
sys.exit(1 if failed else 0)
PY
[ "$status" = 0 ] && echo "check-large-resume: the resumed run ends bit-identical to the straight one"
exit "$status"
