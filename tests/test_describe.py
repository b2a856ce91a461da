"""Automatic descriptions and text checks with the shipped micro CLIP."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from fsam2lib.models.clip import DEFAULT_MICRO_WEIGHTS, load_clip
from fsam2lib.predictor import build_predictor, clip_describer
from fsam2lib.text import vocab
from fsam2lib.text.describe import (
    COLOUR_WORDS,
    auto_description_accuracy,
    check_text,
    default_phrases,
    describe_objects,
    describe_region,
    object_vocabulary,
    read_phrases,
    region_crop,
)
from fsam2lib.videos.world import WorldConfig, make_video

pytestmark = pytest.mark.skipif(
    not DEFAULT_MICRO_WEIGHTS.is_file(),
    reason=f"shipped micro CLIP weights {DEFAULT_MICRO_WEIGHTS} not trained yet",
)

# Small frames, no occlusion: every target is clearly visible where it is first described.
EASY_WORLD = WorldConfig(height=128, width=128, num_frames=8, occlusion=False)


@pytest.fixture(scope="module")
def clip():
    return load_clip("micro")


@pytest.fixture(scope="module")
def easy_videos():
    return [make_video(seed, EASY_WORLD, split="val") for seed in range(12)]


def test_check_text_accepts_vocabulary_silently(clip):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_text("  small red circle ", clip) == "small red circle"


def test_check_text_rejects_empty(clip):
    for text in ("", "   ", "\n\t"):
        with pytest.raises(ValueError, match="empty"):
            check_text(text, clip)


def test_check_text_warns_outside_vocabulary(clip):
    with pytest.warns(UserWarning, match="only knows the synthetic vocabulary"):
        assert check_text("a brown dog", clip) == "a brown dog"


def test_default_phrases_of_micro_are_the_synthetic_descriptions(clip):
    assert default_phrases(clip) == vocab.all_descriptions()


def test_describe_region_names_a_clearly_visible_object(clip, easy_videos):
    video = easy_videos[0]
    areas = {k: int((video.masks[0] == k).sum()) for k in video.object_ids}
    obj = max(areas, key=areas.get)
    result = describe_region(clip, video.frames[0], mask=video.masks[0] == obj)
    truth = vocab.parse_description(video.descriptions[obj])
    assert result.phrase == vocab.describe(truth.colour, truth.shape)
    assert result.score == result.top_k[0][1]
    assert len(result.top_k) == 5
    assert [s for _, s in result.top_k] == sorted((s for _, s in result.top_k), reverse=True)
    assert result.crop.shape == (clip.image_size, clip.image_size, 3)


def test_box_prompt_crops_like_the_mask_bounding_box(clip, easy_videos):
    video = easy_videos[1]
    mask = video.masks[0] == video.object_ids[0]
    ys, xs = np.nonzero(mask)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    by_box = describe_region(clip, video.frames[0], box=box)
    by_mask = describe_region(clip, video.frames[0], mask=mask)
    np.testing.assert_array_equal(by_box.crop, by_mask.crop)
    assert by_box.phrase == by_mask.phrase


def test_region_errors_name_the_problem(clip, easy_videos):
    frame = easy_videos[0].frames[0]
    mask = easy_videos[0].masks[0] > 0
    with pytest.raises(ValueError, match="exactly one of mask and box"):
        region_crop(frame)
    with pytest.raises(ValueError, match="exactly one of mask and box"):
        region_crop(frame, mask=mask, box=(0, 0, 10, 10))
    with pytest.raises(ValueError, match="mask is empty"):
        region_crop(frame, mask=np.zeros_like(mask))
    with pytest.raises(ValueError, match="outside"):
        region_crop(frame, box=(500, 500, 600, 600))
    with pytest.raises(ValueError, match="does not match"):
        region_crop(frame, mask=mask[:10])
    with pytest.raises(ValueError, match="non-empty list"):
        describe_region(clip, frame, mask=mask, phrases=[])


def test_describe_region_ranks_given_phrases_only(clip, easy_videos):
    video = easy_videos[0]
    obj = video.object_ids[0]
    truth = vocab.parse_description(video.descriptions[obj]).colour
    others = [c for c in vocab.COLOURS if c != truth][:2]
    phrases = [f"{c} square" for c in others] + [f"{truth} square"]
    result = describe_region(clip, video.frames[0], mask=video.masks[0] == obj, phrases=phrases)
    assert {p for p, _ in result.top_k} == set(phrases)
    assert sum(s for _, s in result.top_k) == pytest.approx(1.0, abs=1e-5)


def test_auto_description_accuracy_on_easy_videos(clip, easy_videos):
    described = describe_objects(clip, easy_videos[2])
    assert set(described) == set(easy_videos[2].object_ids)
    accuracy = auto_description_accuracy(clip, easy_videos)  # ~20 objects, a third held out
    assert 0.7 <= accuracy <= 1.0


def test_auto_description_accuracy_rejects_non_vocabulary_truth(clip, easy_videos):
    video = easy_videos[3]
    video = replace(video, descriptions=video.descriptions | {video.object_ids[0]: "a brown dog"})
    with pytest.raises(ValueError, match="object"):
        auto_description_accuracy(clip, [video])


def test_vocabulary_files_and_the_shipped_object_vocabulary(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("# my objects\nred circle\n\n  blue star  # the star\n")
    assert read_phrases(path) == ["red circle", "blue star"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="lists no phrases"):
        read_phrases(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        read_phrases(tmp_path / "missing.txt")
    shipped = object_vocabulary()
    nouns = object_vocabulary(["dog", "kite"])
    assert nouns[:2] == ["dog", "kite"] and "black dog" in nouns and "grey kite" in nouns
    assert len(nouns) == 2 * (1 + len(COLOUR_WORDS))
    assert {"person", "red car", "white boat"} <= set(shipped)


def test_describer_ranks_a_given_list_or_file(clip, easy_videos, tmp_path):
    import torch

    video = easy_videos[0]
    obj = video.object_ids[0]
    truth = video.descriptions[obj]
    rgb = torch.from_numpy(video.frames[0]).permute(2, 0, 1).float() / 255
    mask = torch.from_numpy(video.masks[0] == obj)
    decoys = [d for d in vocab.all_descriptions() if d != truth][:3]
    assert clip_describer(clip, [*decoys, truth])(rgb, mask) == truth
    only = tmp_path / "only.txt"
    only.write_text("\n".join(decoys))
    assert clip_describer(clip, only)(rgb, mask) in decoys  # never outside the file's phrases
    assert clip_describer(clip)(rgb, torch.zeros_like(mask)) is None  # empty mask: no text


def test_build_predictor_takes_any_describer(clip):
    def captioner(rgb, mask):
        return "red circle"

    predictor = build_predictor("micro", router=None, describe=captioner)
    assert predictor.describe_object is captioner
