"""Figures are generated, not typed: the README's and the model card's tables and
docs/RESULTS.md match the results files, and the README's prose holds no figure of its own."""

import json
import re

import pytest

from fsam2lib.bench import results
from fsam2lib.paths import REPO_DIR


def test_generated_files_match_the_results_files():
    stale = [
        str(path.relative_to(REPO_DIR))
        for path, text in results.generated().items()
        if path.read_text() != text
    ]
    assert not stale, f"stale: {stale}; run `python -m fsam2lib.bench.results`"


def _prose(text: str) -> str:
    """``text`` without code blocks, inline code, links' targets and generated blocks."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"<!-- generated: .*?<!-- end generated: [a-z]+ -->", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


# numbers that are names, not measurements
NOT_FIGURES = {"2512.21333", "3.11", "2.1", "95 %"}  # and a confidence level


def test_readme_prose_types_no_measured_figure():
    """The README's measured figures (decimals, percentages, speedups) live in its generated
    blocks only."""
    path = "README.md"
    prose = _prose((REPO_DIR / path).read_text())
    figures = re.findall(r"(?<![\w.])[+−-]?\d+\.\d+(?:\s?(?:%|×|MiB|points))?", prose)
    figures += re.findall(r"\b\d+(?:\.\d+)?\s?%", prose)
    typed = [f for f in figures if f.strip("+−-") not in NOT_FIGURES]
    assert not typed, f"{path} types figures outside its generated blocks: {typed}"


def test_a_stale_block_is_detected_and_a_missing_one_named(tmp_path):
    text = "intro\n" + results._start("x") + "\nold\n" + results._end("x") + "\nafter\n"
    assert results.with_block(text, "x", "new") == text.replace("old", "new")
    with pytest.raises(ValueError, match="'y'"):
        results.with_block(text, "y", "new")


def test_a_missing_results_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="rerun the command"):
        results.load("nowhere/x.json", tmp_path)


def test_headline_reads_the_files_it_names(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    result = {
        "kind": "text_effect",
        "settings": {"dataset": "synthetic crossing world, val split, 3 videos"},
        "contrasts": [{"name": "text effect@0.10", "difference": 0.031, "ci95": [0.01, 0.05]}],
    }
    (folder / "te.json").write_text(json.dumps(result))
    fig = results.Figure("claim", "f/te.json", results.contrast("text effect@0.10"))
    table = results.headline_table((fig,), tmp_path)
    assert "| claim | +3.1 [+1.0, +5.0] | synthetic crossing world, val split, 3 videos |" in table


def test_status_banner_reads_its_figures_from_the_evaluation():
    from fsam2lib.workbook.status import status_text

    rows = [
        {
            "world": w,
            "videos": v,
            "protocol": p,
            "J&F": jf,
            "ci95": [jf - 5, jf + 5],
            "num_videos": 20,
        }
        for w, v, p, jf in [
            ("classic", "single-object", "mask", 88.14),
            ("classic", "multi-object", "mask", 84.8),
            ("held_out", "single-object", "mask", 72.8),
            ("held_out", "multi-object", "mask", 68.5),
            ("classic", "single-object", "click", 63.3),
            ("classic", "multi-object", "click", 13.7),
            ("classic", "multi-object, memory bypassed", "mask", 12.4),
        ]
    ]
    text = status_text({"rows": rows, "command": "python -m fsam2lib.evaluate --json x"})
    assert "88.1 [83.1, 93.1]" in text and "12.4 [7.4, 17.4]" in text and "20 videos" in text
    assert "MODEL_CARD" in status_text(None) and "88" not in status_text(None)
