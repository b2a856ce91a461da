#!/usr/bin/env bash
# The real-checkpoint path, rehearsed offline, as a user with Meta's SAM2.1 checkpoint, a CLIP
# and a DAVIS folder would type it: random stand-ins for the downloads (seeded, saved in the
# official formats, marked RANDOM), a router trained for that SAM2 + CLIP on a DAVIS-layout
# folder, the bench on its val list, and notebook 06 with every cell run (papermill; the
# notebook trains its own router). Small input size and few frames to fit CI. It proves the
# path runs, nothing more: every output says RANDOM, which the last step checks. Everything
# lands in build/rehearsal/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
R="$ROOT/build/rehearsal"
rm -rf "$R" && mkdir -p "$R"
export TQDM_DISABLE=1 PYTHONHASHSEED=0 HF_HUB_OFFLINE=1
unset MPLBACKEND  # the executed notebook keeps its figures (inline backend)
SIZE=256  # sam2.1_hiera_t's real config at a 256 px input

echo "[rehearsal] 1/6 the downloads, as seeded RANDOM stand-ins"
"$PY" -m fsam2lib.models.random_checkpoints --sam2 sam2.1_hiera_t --clip ViT-B-32 \
  --out "$R/checkpoints"
CLIP="$R/checkpoints/ViT-B-32-RANDOM.pt"
export FSAM2_CHECKPOINTS="$R/checkpoints"  # where sam2.1_hiera_tiny.pt is looked up by name

echo "[rehearsal] 2/6 a DAVIS-2017-layout folder (without descriptions, like DAVIS itself)"
for split_videos in train:3 val:2; do
  "$PY" -m fsam2lib.videos.make_dataset --out "$R/DAVIS" --split "${split_videos%:*}" \
    --num-videos "${split_videos#*:}" --frames 8 --height 480 --width 854 --no-progress
done
rm "$R/DAVIS/descriptions.json"

echo "[rehearsal] 3/6 a router for this SAM2 + CLIP, trained on the folder's train list"
"$PY" -m fsam2lib.train.train_router --sam2 sam2.1_hiera_t --image-size "$SIZE" \
  --clip ViT-B-32 --clip-pretrained "$CLIP" --dataset "$R/DAVIS" --frames 8 \
  --cache "$R/cache" --steps 40 --no-progress --out "$R/router.safetensors" \
  | tee "$R/train_router.log"

echo "[rehearsal] 4/6 that router trained further for the mask, through the frozen SAM2"
"$PY" -m fsam2lib.train.train_router --objective mask --sam2 sam2.1_hiera_t \
  --image-size "$SIZE" --clip ViT-B-32 --clip-pretrained "$CLIP" --dataset "$R/DAVIS" \
  --init "$R/router.safetensors" --clips 1 --objects-per-clip 1 --clip-frames 4 \
  --mask-steps 2 --no-progress --out "$R/router_mask.safetensors" | tee "$R/train_router_mask.log"

echo "[rehearsal] 5/6 the bench on the val list"
"$PY" -m fsam2lib.bench accuracy --dataset "$R/DAVIS" --split val --model sam2.1_hiera_t \
  --image-size "$SIZE" --clip ViT-B-32 --clip-pretrained "$CLIP" \
  --router "$R/router_mask.safetensors" --keep 1.0,0.5 --strategies router,random \
  --json "$R/accuracy.json" --no-progress

echo "[rehearsal] 6/6 notebook 06, every cell (settings from the environment, as it documents)"
export FSAM2_DAVIS_ROOT="$R/DAVIS" FSAM2_CLIP_PRETRAINED="$CLIP" FSAM2_IMAGE_SIZE="$SIZE" \
  FSAM2_MAX_VIDEOS=2 FSAM2_MAX_FRAMES=8 FSAM2_KEEP_RATIOS=0.5
# the notebook trains its own router (the bench above used the one the CLI trained)
SUMMARY="$ROOT/build/summary/06_real_checkpoints.json"  # what the notebook records
rm -f "$SUMMARY"
FSAM2_ROUTER_TRAIN_VIDEOS=2 FSAM2_ROUTER_MINUTES=0.1 "$PY" -m papermill --no-progress-bar \
  notebooks/06_real_checkpoints.ipynb "$R/06_real_checkpoints.ipynb" --cwd notebooks
cp "$SUMMARY" "$R/notebook_summary.json"

"$PY" -m fsam2lib.workbook.rehearsal "$R"
