#!/usr/bin/env bash
# Record -> train -> evaluate a behaviour-cloning reach policy, on CPU, in one command:
#
#   examples/reach_bc/run.sh                 # everything under /tmp/reach_bc
#   OUT=/data/reach EPISODES=200 examples/reach_bc/run.sh
#
# Steps (each skipped when its output is already there, so a rerun only redoes what is missing):
#   1. vlatwin record: EPISODES scripted-expert demonstrations (front camera), from seed SEED. The
#      evaluation uses the task's 50 fixed initial states (configs/tasks/init_states/reach_ball.json), which
#      come from a different random stream, so the policy is tested on layouts it has not seen.
#   2. train.py: the image + joint-state policy (policy.py), EPOCHS epochs, THREADS torch threads.
#   3. vlatwin eval: the trained policy and the random baseline on the 50 fixed states.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CONFIG="${CONFIG:-$REPO/configs/tasks/reach_ball.yaml}"
OUT="${OUT:-/tmp/reach_bc}"
EPISODES="${EPISODES:-150}"
SEED="${SEED:-1000}"
EPOCHS="${EPOCHS:-30}"
THREADS="${THREADS:-2}"
EVAL_EPISODES="${EVAL_EPISODES:-50}"
export WARP_CACHE_PATH="${WARP_CACHE_PATH:-$HOME/.cache/vlatwin/warp}"
cd "$REPO"
mkdir -p "$OUT"

if [[ ! -f "$OUT/demos/meta/vlatwin/run.json" ]]; then
  vlatwin record "$CONFIG" --episodes "$EPISODES" --seed "$SEED" --cameras front --out "$OUT/demos" --no-progress
elif ! grep -q '"complete": true' "$OUT/demos/meta/vlatwin/run.json"; then
  vlatwin record "$CONFIG" --episodes "$EPISODES" --seed "$SEED" --cameras front --out "$OUT/demos" --no-progress --resume
fi

if [[ ! -f "$OUT/model.pt" ]]; then
  python "$HERE/train.py" "$OUT/demos" --out "$OUT/model.pt" --epochs "$EPOCHS" --threads "$THREADS"
fi

evaluate() {  # evaluate SPEC LABEL DIR: the task's fixed initial states; continues an interrupted run
  local resume=()
  [[ -f "$3/run.json" ]] && resume=(--resume)
  vlatwin eval "$CONFIG" --policy "$1" --label "$2" --episodes "$EVAL_EPISODES" --out "$3" --no-progress "${resume[@]}"
}
evaluate "examples/reach_bc/policy.py:make_policy?checkpoint=$OUT/model.pt" reach_bc "$OUT/eval_bc"
evaluate random random "$OUT/eval_random"
echo "results: $OUT/eval_bc/results.json (reach_bc) and $OUT/eval_random/results.json (random)"
