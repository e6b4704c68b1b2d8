#!/usr/bin/env bash
# `make quickstart QUICK=1`: the whole pipeline end to end on a toy model pretrained on the spot,
# in a few minutes (a test in the suite). The real quickstart, on SmolLM2-135M, is
# `make quickstart` (scripts/experiment.py --profile quickstart).
#
#   1. corpora from Debian packages (general English, communication-technology docs)
#   2. pretrain a small base model on the general text (reused when already trained)
#   3. start logitd; the base model as teacher records candidate sets over the domain text
#   4. logitctl stats on the cache
#   5. fine-tune copies of the base on the cache with four recipes (same steps, batches, seed):
#      the default (tail + KD), full_adamw, the paper-literal replay_moclip, full_moclip
#   6. evaluate base and recipes on held-out domain and general text; write report.md/json
#
# Usage: scripts/quickstart.sh OUT_DIR quick   (toy sizes, about 3 minutes)
# Binaries come from .build/release (built by `make quickstart`).
set -euo pipefail
OUT=${1:?usage: quickstart.sh OUT_DIR quick}
MODE=${2:-}
if [ "$MODE" != quick ]; then
  echo "quickstart.sh runs the toy pipeline only (give 'quick'); the quickstart on SmolLM2-135M is make quickstart" >&2
  exit 2
fi
BIN=${BIN:-.build/release}
CORPORA=${CORPORA:-runs/corpora}
mkdir -p "$OUT/evals" "$OUT/recipes" "$OUT/text"

# Toy sizes: the same pipeline in a few minutes.
SIZE=toy VOCAB=1024 PRE_STEPS=150 PRE_BATCH=8 SEQ=128 FT_STEPS=40 FT_TOKENS=1024 EVAL_EVERY=20
GENERAL_BYTES=400000 DOMAIN_BYTES=200000 HELDOUT_BYTES=40000
# Fine-tuning uses a tenth of the pretraining peak rate, the usual rule; nothing is tuned on held-out text.
PRE_LR=3e-3 FT_LR=3e-4 SEED=${SEED:-0}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "1/6 corpora (Debian packages → $CORPORA)"
python3 scripts/corpora.py --out "$CORPORA"
# `corpora.py cut FILE BYTES OUT`: about BYTES of FILE (0: all), taken as evenly spaced runs of
# whole paragraphs so that every source of the corpus is represented.
python3 scripts/corpora.py cut "$CORPORA/general.train.txt" "$GENERAL_BYTES" "$OUT/text/general.train.txt"
python3 scripts/corpora.py cut "$CORPORA/domain.train.txt" "$DOMAIN_BYTES" "$OUT/text/domain.train.txt"
python3 scripts/corpora.py cut "$CORPORA/general.heldout.txt" "$HELDOUT_BYTES" "$OUT/text/general.heldout.txt"
python3 scripts/corpora.py cut "$CORPORA/domain.heldout.txt" "$HELDOUT_BYTES" "$OUT/text/domain.heldout.txt"
wc -c "$OUT"/text/*.txt

step "2/6 pretrain the base model ($SIZE, vocab $VOCAB, $PRE_STEPS steps) on general text"
# A base trained on other text or settings is set aside, not silently reused.
if [ -f "$OUT/base/run.json" ] && ! python3 - "$OUT/base/run.json" "$OUT/text/general.train.txt" "$PRE_STEPS" "$SIZE" <<'PY'
import hashlib, json, sys
run = json.load(open(sys.argv[1]))
digest = hashlib.sha256(open(sys.argv[2], 'rb').read()).hexdigest()
sys.exit(0 if run.get('corpus_sha256') == digest and run.get('steps') == sys.argv[3] and run.get('size') == sys.argv[4] else 1)
PY
then
  stale="$OUT/base.stale-$(date +%Y%m%d-%H%M%S)"
  echo "the base model in $OUT/base was trained on other text or settings; moved to $stale"
  mv "$OUT/base" "$stale"
fi
"$BIN/logit-train" pretrain --corpus "$OUT/text/general.train.txt" --heldout "$OUT/text/general.heldout.txt" \
  --vocab-size "$VOCAB" --size "$SIZE" --out "$OUT/base" --steps "$PRE_STEPS" --batch "$PRE_BATCH" --seq-len "$SEQ" \
  --lr "$PRE_LR" --warmup $((PRE_STEPS / 10)) --seed "$SEED" --eval-every $((PRE_STEPS / 4)) --checkpoint-every $((PRE_STEPS / 4))

step "3/6 logitd + teacher over the domain training text"
rm -rf "$OUT/cache"
"$BIN/logitd" serve --cache-dir "$OUT/cache" --port 0 --log-level warning > "$OUT/logitd.out" 2> "$OUT/logitd.log" &
DAEMON=$!
trap 'kill -TERM $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$OUT/logitd.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$OUT/logitd.out" | head -1)
[ -n "$URL" ] || { echo "logitd did not start:"; cat "$OUT/logitd.log"; exit 1; }
echo "logitd at $URL"
"$BIN/logit-teach" --model "$OUT/base" --corpus "$OUT/text/domain.train.txt" --daemon "$URL" --dataset domain \
  --seq-len "$SEQ" --tau 0.95 --kmin 1 --kmax 64
kill -TERM $DAEMON; wait $DAEMON || true; trap - EXIT

step "4/6 coverage of the cache"
"$BIN/logitctl" stats "$OUT/cache" --dataset domain
"$BIN/logitctl" stats "$OUT/cache" --dataset domain --json > "$OUT/cache-stats.json"

step "5/6 fine-tune four copies of the base ($FT_STEPS steps of ≤ $FT_TOKENS positions each)"
for recipe in replay_moclip_tail_kd full_adamw replay_moclip full_moclip; do
  case $recipe in
    replay_moclip_tail_kd) args="--loss tail --kd-alpha 0.5 --optimizer moclip";;   # logit-train replay's default
    full_adamw)    args="--loss full --optimizer adamw";;
    replay_moclip) args="--loss restricted --kd-alpha 0 --optimizer moclip";;      # the paper's literal loss
    full_moclip)   args="--loss full --optimizer moclip";;
  esac
  echo "-- $recipe"
  # shellcheck disable=SC2086
  "$BIN/logit-train" replay --cache "$OUT/cache" --dataset domain --init "$OUT/base" --out "$OUT/recipes/$recipe" $args \
    --steps "$FT_STEPS" --batch-tokens "$FT_TOKENS" --seq-len "$SEQ" --lr "$FT_LR" --warmup $((FT_STEPS / 10)) --seed "$SEED" \
    --eval "domain=$OUT/text/domain.heldout.txt" --eval "general=$OUT/text/general.heldout.txt" \
    --eval-every "$EVAL_EVERY" --eval-tokens 8192 --checkpoint-every "$FT_STEPS"
done

step "6/6 evaluate on held-out text and write the report"
for recipe in base replay_moclip_tail_kd full_adamw replay_moclip full_moclip; do
  model="$OUT/recipes/$recipe"; [ "$recipe" = base ] && model="$OUT/base"
  for text in domain general; do
    "$BIN/logit-train" eval --model "$model" --corpus "$OUT/text/$text.heldout.txt" --seq-len "$SEQ" --json \
      > "$OUT/evals/$recipe-$text.json"
  done
done
"$BIN/logit-train" report --dir "$OUT"
