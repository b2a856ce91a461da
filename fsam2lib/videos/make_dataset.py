"""Write a split of the synthetic world to disk in the DAVIS 2017 layout.

    python -m fsam2lib.videos.make_dataset --out data/synth --split val --num-videos 20 \\
        [--height 480 --width 854] [--frames 24] [--seed 0] [--max-objects 3]

Videos are named ``<split>_0000``, ``<split>_0001``, ... and seeded by
``synthetic.video_seed(split, index, seed)``, so the same arguments always give the same files and
the splits never share a video. ``ImageSets/2017/<split>.txt`` lists the videos and
``descriptions.json`` holds each object's text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fsam2lib.videos import davis
from fsam2lib.videos.world import BACKGROUNDS, WorldConfig, make_split
from fsam2lib.videos.worlds import FAMILIES, family_split


def _parser() -> argparse.ArgumentParser:
    defaults = WorldConfig()
    parser = argparse.ArgumentParser(
        prog="python -m fsam2lib.videos.make_dataset",
        description="Generate synthetic videos (frames, masks, descriptions) in DAVIS layout.",
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset root to write into")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument(
        "--world",
        default="classic",
        choices=FAMILIES,
        help="world family (fsam2lib.videos.worlds); other than classic, each video draws its own "
        "framing and effects at --height, and --width and the world options below are ignored",
    )
    parser.add_argument("--num-videos", type=int, default=20)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--frames", type=int, default=defaults.num_frames, help="frames per video")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the split")
    parser.add_argument("--min-objects", type=int, default=defaults.min_objects)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    parser.add_argument("--max-distractors", type=int, default=defaults.max_distractors)
    parser.add_argument("--background", default=defaults.background, choices=BACKGROUNDS)
    parser.add_argument("--no-camera-pan", action="store_true", help="keep the camera still")
    parser.add_argument("--no-occlusion", action="store_true", help="never steer objects together")
    parser.add_argument("--no-enter-leave", action="store_true", help="keep objects in frame")
    parser.add_argument("--resolution", default="480p", help="DAVIS resolution folder name")
    parser.add_argument("--frame-format", default="jpg", choices=("jpg", "png"))
    parser.add_argument("--overwrite", action="store_true", help="replace existing videos")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.num_videos < 1:
        parser.error(f"--num-videos must be >= 1, got {args.num_videos}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    try:
        config = WorldConfig(
            height=args.height,
            width=args.width,
            num_frames=args.frames,
            min_objects=args.min_objects,
            max_objects=args.max_objects,
            max_distractors=args.max_distractors,
            background=args.background,
            camera_pan=not args.no_camera_pan,
            occlusion=not args.no_occlusion,
            enter_leave=not args.no_enter_leave,
        )
    except ValueError as error:
        parser.error(str(error))

    names = []
    if args.world == "classic":
        videos = make_split(
            args.split, args.num_videos, config, args.seed, progress=not args.no_progress
        )
    else:
        videos = family_split(
            args.world,
            args.split,
            args.num_videos,
            args.frames,
            args.height,
            args.min_objects,
            args.max_objects,
            args.seed,
            progress=not args.no_progress,
        )
    for video in videos:
        try:
            davis.write_video(
                args.out, video, args.resolution, args.frame_format, overwrite=args.overwrite
            )
        except FileExistsError as error:
            parser.error(f"{error} (use --overwrite to replace it)")
        names.append(video.name)
    davis.write_image_set(args.out, names, split=args.split)
    size = f"{config.height}x{config.width}" if args.world == "classic" else f"{args.world} world"
    print(
        f"wrote {len(names)} {args.split} videos ({size}, {config.num_frames} frames) "
        f"to {args.out.resolve()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
