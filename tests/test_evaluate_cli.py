"""``python -m fsam2lib.evaluate``: the rows it writes, and the input size it runs at."""

import json

import pytest

from fsam2lib.evaluate import main


def test_evaluate_writes_rows_at_the_requested_input_size(tmp_path, capsys):
    out = tmp_path / "eval.json"
    args = ["--worlds", "classic", "--protocols", "mask", "--num-videos", "1", "--frames", "8"]
    main([*args, "--image-size", "128", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["image_size"] == 128
    assert "--image-size 128" in result["command"]
    kinds = [row["videos"] for row in result["rows"]]
    assert kinds == ["single-object", "multi-object"]
    for row in result["rows"]:
        assert row["num_videos"] == 1
        assert 0.0 <= row["J&F"] <= 100.0
        assert row["ci95"][0] <= row["J&F"] <= row["ci95"][1]
    assert "J&F" in capsys.readouterr().out


def test_evaluate_refuses_an_input_size_off_the_32_grid():
    with pytest.raises(ValueError, match="multiple of 32"):
        main(["--worlds", "classic", "--num-videos", "1", "--image-size", "100"])
