"""A wheel carries the micro weights and configs: installed into a fresh virtual environment
and run from outside the repository, it builds the micro predictor and tracks a video."""

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    warnings.filterwarnings("ignore")
    import fsam2lib
    from fsam2lib.paths import DATA_DIR, IN_REPOSITORY
    from fsam2lib.videos.frames import init_state_from_frames
    from fsam2lib.videos.world import WorldConfig, make_video

    assert fsam2lib.__file__.startswith(sys.argv[1]), fsam2lib.__file__
    assert not IN_REPOSITORY and DATA_DIR.name == "shipped", DATA_DIR
    video = make_video(1, WorldConfig(height=64, width=64, num_frames=8), "val")
    predictor = fsam2lib.build_predictor(
        "micro", pruning=fsam2lib.PruningConfig(keep_ratio=0.3, strategy="router")
    )
    state = init_state_from_frames(predictor, video.frames[:3])
    obj = min(video.descriptions)
    predictor.add_new_mask(state, 0, obj, video.masks[0] == obj, text=video.descriptions[obj])
    frames = [t for t, _, _ in predictor.propagate_in_video(state)]
    print("tracked", frames, predictor.token_scores(state, 2, obj).kept_query_idx.shape)
    """
)


def test_wheel_installs_and_predicts_outside_the_repository(tmp_path):
    # build from the tracked files only (as a fresh clone would), so no stale build output
    # and no untracked file can end up in the wheel
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("fsam2lib-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(
        sysconfig.get_paths(vars={"base": str(env_dir), "platbase": str(env_dir)})["purelib"]
    )
    # dependencies come from this environment's site-packages, listed (not scanned: its
    # editable-install hook for the repository is not loaded) by a .pth file
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True,
    )  # fmt: skip
    python = env_dir / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", SCRIPT, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tracked [0, 1, 2]" in result.stdout
