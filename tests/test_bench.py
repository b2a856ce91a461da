"""Benchmark CLI and library: quick efficiency / accuracy / memory runs of the micro model with
random weights (cost only), the analytic FLOPs against a hand computation, argument errors,
--compare, plots."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json

import numpy as np
import pytest
import torch

from fsam2lib import bench
from fsam2lib.bench.accuracy import text_setup
from fsam2lib.bench.profiling import STAGES, MemoryAttentionDims, amdahl, memory_attention_flops
from fsam2lib.pruning.config import FILLS, PruningConfig

torch.set_num_threads(1)
# sam2's hole filling needs its CUDA extension; without it sam2 warns and skips that step
pytestmark = pytest.mark.filterwarnings("ignore:(?s).*Skipping the post-processing step")

# micro SAM2 (fsam2lib/configs/sam2_micro.yaml): 256 px -> 16x16 tokens, memory attention
# d_model 64, 1 head of width 64, memory tokens 32-d, MLP 256, 2 layers; 7 memory frames.
MICRO_DIMS = MemoryAttentionDims(
    d_model=64, self_dim=64, cross_dim=64, memory_dim=32, ffn_dim=256, num_layers=2
)
HW = 16 * 16
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RANDOM_MICRO = bench.ModelSpec("micro", weights="random")  # cost only: masks mean nothing


def hand_flops(nq: int, mem: int, ptr: int) -> int:
    """The micro model's memory-attention FLOPs written out term by term (2 FLOPs per MAC)."""
    d, di, dm, f, layers = 64, 64, 32, 256, 2
    keys = mem + ptr
    self_attn = 3 * nq * d * di + nq * di * d + nq * nq * di + nq * nq * di
    cross_attn = nq * d * di + nq * di * d + keys * dm * di * 2 + nq * keys * di * 2
    mlp = nq * d * f + nq * f * d
    return 2 * layers * (self_attn + cross_attn + mlp)


def run_cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.main(argv) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def efficiency(tmp_path_factory) -> tuple[dict, str, object]:
    """One quick CLI efficiency run (in-process, 2 keep ratios), compared with a fake earlier run."""
    folder = tmp_path_factory.mktemp("eff")
    previous = folder / "previous.json"
    previous.write_text(
        json.dumps(
            {
                "kind": "efficiency",
                "weights_label": "earlier",
                "configs": [{"name": "keep=0.50", "seconds_per_frame": 1e6}],
            }
        )
    )
    out = folder / "eff.json"
    printed = run_cli(
        [
            "efficiency",
            "--model=micro",
            "--weights=random",
            "--image-size=256",
            "--keep=1.0,0.5",
            "--quick",
            "--in-process",
            "--threads=1",
            "--no-progress",
            f"--json={out}",
            f"--compare={previous}",
        ]
    )
    return json.loads(out.read_text()), printed, out


def test_efficiency_result_keys_and_labels(efficiency):
    result, printed, _ = efficiency
    for key in ("kind", "weights_label", "random_weights", "note", "configs", "reference"):
        assert key in result
    assert result["random_weights"] is True
    assert "RANDOM" in result["weights_label"] and "RANDOM" in result["note"]
    assert "RANDOM" in printed and "keep=0.50" in printed
    assert result["router"].startswith("untrained") and "RANDOM" in result["router"]
    assert result["text_encoder"] == "CLIP micro" and result["text"]  # the router's text cue is on
    assert [c["name"] for c in result["configs"]] == ["keep=1.00 (stock)", "keep=0.50"]
    assert result["memory_attention"] == dataclasses.asdict(MICRO_DIMS)
    assert result["settings"]["steady_frames"] == [7, 8]  # 9 frames, num_maskmem 7
    for config in result["configs"]:
        stages = config["stage_seconds"]
        assert set(stages) == set(STAGES)
        assert sum(stages.values()) == pytest.approx(config["seconds_per_frame"], rel=1e-9)
        assert config["peak_rss_bytes"] is None  # in-process: not attributable to one config
        assert config["peak_cuda_bytes"] is None  # CPU run
    ref, pruned = result["configs"]
    assert ref["speedup"] == 1.0 and ref["stage_seconds"]["router"] == 0.0
    assert pruned["stage_seconds"]["router"] > 0.0  # the untrained router ran and was timed
    p = ref["stage_share"]["memory_attention"]
    s = pruned["memory_attention_speedup"]
    assert pruned["amdahl"]["bound"] == pytest.approx(1 / ((1 - p) + p / s))
    assert pruned["amdahl"]["ceiling"] == pytest.approx(1 / (1 - p))


def test_efficiency_tokens_and_flops_follow_the_formula(efficiency):
    result, _, _ = efficiency
    ref, pruned = result["configs"]
    assert ref["tokens"]["query_kept"] == HW
    assert ref["tokens"]["memory_kept_per_frame"] == [HW] * 7
    assert pruned["tokens"]["query_kept"] == pruned["tokens"]["query_expected"] == HW // 2
    assert pruned["tokens"]["memory_kept_per_frame"] == [HW // 2] * 7
    ptr_lo, ptr_hi = pruned["tokens"]["pointer_tokens"]
    assert ptr_lo == ref["tokens"]["pointer_tokens"][0] and ptr_hi > 0
    # steady frames 7 and 8: 7 and 8 previous object pointers, each split into 64/32 = 2 tokens
    assert (ptr_lo, ptr_hi) == (14, 16)
    mean = lambda nq, mem: (hand_flops(nq, mem, 14) + hand_flops(nq, mem, 16)) / 2  # noqa: E731
    assert ref["memory_attention_flops"]["total"] == pytest.approx(mean(HW, 7 * HW))
    assert pruned["memory_attention_flops"]["total"] == pytest.approx(mean(HW // 2, 7 * HW // 2))
    assert pruned["memory_attention_flops"]["total"] < ref["memory_attention_flops"]["total"]
    assert 0.25 < pruned["flops_vs_dense"] < 0.5  # between r^2 (attention) and r (projections)
    bank = pruned["memory_bank_bytes"]
    assert bank["dense"] == 7 * HW * 32 * 2  # bf16 memory features, 32-d
    assert bank["kept"] == bank["dense"] // 2
    # stored compact (the lean state policy): kept bf16 features + int32 indices, and the
    # fp32 conditioned features [1, 64, 16, 16] of the latest frame (the fill; the prompted
    # frame has none: SAM2 takes a mask prompt as the output without memory conditioning)
    assert bank["fill"] == 64 * HW * 4
    assert bank["stored"] == 7 * (HW // 2) * (32 * 2 + 4) + bank["fill"]
    assert ref["memory_bank_bytes"]["fill"] == 0  # no fill without pruning
    assert ref["memory_bank_bytes"]["stored"] == bank["dense"]


def test_flops_formula_hand_case():
    flops = memory_attention_flops(MICRO_DIMS, 100, [40, 60], 6)
    assert flops["total"] == hand_flops(100, 100, 6)
    assert flops["total"] == sum(v for k, v in flops.items() if k != "total")
    smaller = memory_attention_flops(MICRO_DIMS, 50, [20, 30], 6)
    assert smaller["total"] < flops["total"]
    assert smaller["self_attention"] < flops["self_attention"] / 2  # quadratic in queries
    with pytest.raises(ValueError, match="query token count"):
        memory_attention_flops(MICRO_DIMS, -1, 10)


def test_amdahl():
    assert amdahl(0.5, 2.0)["bound"] == pytest.approx(1 / 0.75)
    assert amdahl(0.5, 2.0)["ceiling"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="share"):
        amdahl(1.5, 2.0)


def test_efficiency_plots_and_compare(efficiency):
    result, printed, path = efficiency
    png = path.with_name("eff_stages.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {png}" in printed
    # the fake earlier run had 1e6 s/frame for keep=0.50
    assert "compare: previous earlier" in printed
    assert "configs[keep=0.50].seconds_per_frame" in printed
    faster = copy.deepcopy(result)
    faster["configs"][1]["seconds_per_frame"] /= 2
    rows = {r["figure"]: r for r in bench.compare_results(result, faster)["rows"]}
    row = rows["configs[keep=0.50].seconds_per_frame"]
    assert row["relative"] == pytest.approx(-0.5)
    assert rows["configs[keep=1.00 (stock)].speedup"]["change"] == 0.0
    with pytest.raises(ValueError, match="cannot compare"):
        bench.compare_results(result, {"kind": "accuracy"})
    other = path.with_name("faster.json")
    other.write_text(json.dumps(faster))
    assert "-50.0%" in run_cli(["compare", str(path), str(other)])


def test_isolated_run_reports_its_own_peak_rss():
    """Each (repeat, config) in a fresh subprocess: peak RSS belongs to that run."""
    result = bench.run_efficiency(
        bench.ModelSpec("micro", weights="random", image_size=256, clip=None),
        keep=[1.0],
        quick=True,
        threads=1,
    )
    (ref,) = result["configs"]
    assert result["settings"]["isolated"] is True
    assert ref["peak_rss_bytes"] >= ref["baseline_rss_bytes"] > 0
    assert result["text_encoder"] is None and result["text"] is None


def test_spec_carries_an_in_memory_predictor_and_router():
    """A built predictor and a router object (say, one a notebook just trained) run in this
    process; the predictor gets its own router and pruning back; a fresh process refuses them."""
    import fsam2lib
    from fsam2lib.pruning.router import RouterConfig, TokenRouter

    predictor = fsam2lib.build_predictor(model="micro", weights="random", router=None)
    own_pruning = predictor.pruning
    text_dim = int(predictor.text_encoder(["red circle"]).shape[-1])
    router = TokenRouter(RouterConfig(feat_dim=predictor.hidden_dim, text_dim=text_dim)).eval()
    spec = bench.ModelSpec(predictor=predictor, router=router)
    assert spec.in_memory and spec.input_size() == 256
    result = bench.run_accuracy(
        spec, bench.open_dataset("synthetic:val:1", quick=True), keep="0.5", strategies="router"
    )
    assert [c["name"] for c in result["configs"]] == ["reference", "router@0.50"]
    assert result["router"] == "in memory (TokenRouter)"
    assert result["text_encoder"] == "the predictor's own: CLIP micro (trained)"
    assert result["random_weights"] is True
    assert predictor.router is None and predictor.pruning is own_pruning
    eff = bench.run_efficiency(spec, keep=[1.0, 0.5], quick=True, threads=1, isolate=False)
    assert eff["router"] == "in memory (TokenRouter)"
    assert eff["configs"][1]["stage_seconds"]["router"] > 0.0  # the given router ran
    assert predictor.router is None and predictor.pruning is own_pruning
    with pytest.raises(ValueError, match="isolate=False"):
        bench.run_memory(spec, lengths=[4])  # isolate=True: a fresh process
    trained = fsam2lib.build_predictor(model="micro", router=None)
    with pytest.raises(ValueError, match="need a router"):
        bench.run_accuracy(bench.ModelSpec(predictor=trained), strategies="router")


def test_quick_accuracy(tmp_path, capsys):
    result = bench.run_accuracy(
        RANDOM_MICRO,
        bench.open_dataset("synthetic:val:1", quick=True),
        keep="1.0,0.5",
        strategies="random",
    )
    assert capsys.readouterr().out == ""  # library functions do not print
    assert [c["name"] for c in result["configs"]] == ["reference", "random@0.50"]
    ref = result["configs"][0]
    assert ref["strategy"] == "none" and ref["jf_drop"] == 0.0 and ref["speedup"] == 1.0
    rows = result["videos"]
    assert [(r["video"], r["config"]) for r in rows] == [
        ("val_0000", "reference"),
        ("val_0000", "random@0.50"),
    ]
    assert rows[0]["jf_drop"] == 0.0
    assert rows[1]["jf_drop"] == pytest.approx(rows[0]["J&F"] - rows[1]["J&F"])
    # one video: every resample is that video, so the intervals collapse onto the figures
    assert ref["ci95"] == pytest.approx([ref["J&F"]] * 2)
    assert result["configs"][1]["jf_drop_ci95"] == pytest.approx([rows[1]["jf_drop"]] * 2)
    assert "J&F 95% CI" in bench.format_accuracy_table(result)
    for row in rows:
        assert 0.0 <= row["J"] <= 1.0 and 0.0 <= row["F"] <= 1.0
        assert row["J&F"] == pytest.approx((row["J"] + row["F"]) / 2)
        assert row["frames"] == 8
    assert "RANDOM" in result["note"] and result["text"] == "dataset descriptions"
    table = bench.format_accuracy_table(result)
    assert "random@0.50" in table and "RANDOM" in table
    paths = bench.write_result(result, tmp_path / "acc.json")
    assert paths[1].name == "acc_jf_vs_keep.png" and paths[1].read_bytes()[:8] == PNG_MAGIC


def test_quick_ablation_rows_fills_and_contexts():
    result = bench.run_ablation(
        RANDOM_MICRO,
        bench.open_dataset("synthetic:val:1", quick=True),
        keep=0.25,
        strategy="mask_prior",
        fills=FILLS,
        contexts=(0.0, 0.5),
    )
    configs = {c["name"]: c for c in result["configs"]}
    default = PruningConfig()
    others = [f for f in FILLS if f != default.fill]
    names = ["reference", "mask_prior all cues"] + [f"mask_prior fill={f}" for f in others]
    names += [f"mask_prior context={c:g}" for c in (0.0, 0.5) if c != default.context]
    assert list(configs) == names
    assert len(others) == len(FILLS) - 1
    assert all(configs[f"mask_prior fill={f}"]["fill"] == f for f in others)
    assert configs["mask_prior all cues"]["fill"] == default.fill
    assert configs["mask_prior all cues"]["context"] == default.context
    assert all(c["keep_ratio"] == 0.25 for n, c in configs.items() if n != "reference")
    with_ctx = bench.run_accuracy(
        RANDOM_MICRO,
        bench.open_dataset("synthetic:val:1", quick=True),
        keep="0.25",
        strategies="grid",
        context=0.5,
        fill="previous",
    )
    assert with_ctx["configs"][1]["context"] == 0.5
    assert with_ctx["configs"][1]["fill"] == "previous"
    with pytest.raises(ValueError, match="unknown fill 'blur'"):
        bench.run_accuracy(RANDOM_MICRO, fill="blur")


def test_memory_vs_length_stock_and_lean():
    result = bench.run_memory(
        RANDOM_MICRO,
        lengths=[6, 40],
        configs=["stock", "pruned", "pruned+lean"],
        keep=0.5,
        trace_every=10,
        isolate=False,
        threads=1,
    )
    rows = {(r["config"], r["frames"]): r for r in result["rows"]}
    assert set(rows) == {(c, n) for c in ("stock", "pruned", "pruned+lean") for n in (6, 40)}
    per_frame = 32 * HW * 2  # bf16 [1, 32, 16, 16]
    kept = HW // 2
    # stock storage keeps every frame's dense memory; the lean policy keeps the frames SAM2
    # can still read (prompt window + the window behind the last frame), each compact
    # (and a pruned run's fill: the fp32 conditioned features of its latest frame)
    fill = 64 * HW * 4
    assert rows[("stock", 40)]["stored_bank_bytes"] == 40 * per_frame
    assert rows[("stock", 40)]["fill_bytes"] == 0
    assert rows[("pruned", 40)]["fill_bytes"] == fill
    assert rows[("pruned", 40)]["stored_bank_bytes"] == 40 * per_frame + fill
    lean = rows[("pruned+lean", 40)]
    assert lean["stored_outputs"] < 40
    assert lean["fill_bytes"] == fill
    assert lean["stored_bank_bytes"] == lean["stored_outputs"] * kept * (32 * 2 + 4) + fill
    assert lean["state_bytes"]["total"] < rows[("stock", 40)]["state_bytes"]["total"] / 2
    assert rows[("stock", 6)]["working_set_bytes"] is None  # in-process: no own peak
    summary = result["summary"]
    ratio = summary["pruned+lean"]["vs_stock"][40]["stored_bank"]
    assert ratio == pytest.approx(lean["stored_bank_bytes"] / (40 * per_frame))
    assert summary["stock"]["state_growth_bytes_per_frame"] > per_frame
    assert lean["trace"] and lean["trace"][-1]["frame"] == 39
    assert "pruned+lean" in bench.format_memory_table(result)
    fig = bench.plot_memory_vs_length(result)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="configs must be names"):
        bench.run_memory(RANDOM_MICRO, configs="stock,thrifty")
    with pytest.raises(ValueError, match="integer >= 2"):
        bench.run_memory(RANDOM_MICRO, lengths="1,8")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["efficiency", "--keep=0.5,1.5"], "out of range"),
        (["efficiency", "--keep=0,0.5"], "out of range"),
        (["efficiency", "--strategy=magic"], "unknown strategy"),
        (["accuracy", "--strategies=router,magic"], "unknown strategy"),
        (["efficiency", "--keep=0.5,0.3", "--memory-keep=0.5,0.4,0.3"], "one per keep ratio"),
        (["accuracy", "--dataset=/nonexistent/davis"], "dataset folder not found"),
        (["accuracy", "--dataset=synthetic:val"], "synthetic:SPLIT:N"),
        (["compare", "/nonexistent/a.json", "/nonexistent/b.json"], "result file not found"),
        (["ablation", "--contexts=0,lots"], "--contexts must be"),
        (["ablation", "--contexts=0,2"], "--contexts must lie in"),
        (["efficiency", "--objects=0,4"], "objects must be"),
        (["efficiency", "--objects=1,many"], "objects must be"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_efficiency_per_object_count_with_its_bound():
    """Each configuration at each object count, against the stock run of the same count;
    the bound is the stock frame without its memory-attention time."""
    spec = bench.ModelSpec("micro", weights="random", clip=None)
    result = bench.run_efficiency(
        spec, keep=[1.0, 0.5], strategy="grid", objects="1,3", quick=True, threads=1, isolate=False
    )
    rows = result["configs"]
    assert [(r["objects"], r["strategy"]) for r in rows] == [
        (1, "none"),
        (1, "grid"),
        (3, "none"),
        (3, "grid"),
    ]
    assert result["reference"] == rows[0]["name"] == "keep=1.00 (stock) x1 obj"
    assert result["settings"]["objects"] == [1, 3]
    for stock, pruned in (rows[:2], rows[2:]):
        share = stock["stage_share"]["memory_attention"]
        assert pruned["bound"] == pytest.approx(1 / (1 - share))
        assert pruned["speedup_of_bound"] == pytest.approx(pruned["speedup"] / pruned["bound"])
    # three objects: memory attention runs three times a frame, the encoder once
    assert (
        rows[2]["stage_seconds"]["memory_attention"] > rows[0]["stage_seconds"]["memory_attention"]
    )
    assert "objects tracked" in bench.format_efficiency_table(result)


def test_cost_prompts_take_the_frame0_targets_in_turn():
    from fsam2lib.bench.runner import cost_prompts

    video = bench.cost_video(128, 9)
    present = [k for k in sorted(video.descriptions) if (video.masks[0] == k).any()]
    n = len(present) + 1
    prompts = cost_prompts(video, n, "my text")
    assert [p[0] for p in prompts] == list(range(1, n + 1))
    targets = [present[i % len(present)] for i in range(n)]  # the targets taken in turn
    for (_, mask, text), target in zip(prompts[1:], targets[1:], strict=True):
        assert np.array_equal(mask, video.masks[0] == target)
        assert text == video.descriptions[target]
    assert prompts[0][2] == "my text" and np.array_equal(prompts[0][1], video.masks[0] == 1)
    assert all(p[2] is None for p in cost_prompts(video, 3, None))
    with pytest.raises(ValueError, match="objects must be"):
        cost_prompts(video, 0, None)


def test_parse_helpers():
    assert bench.parse_ratios("1.0, 0.5") == [1.0, 0.5]
    assert bench.parse_memory_keep("same", [1.0, 0.5]) == [None, None]
    assert bench.parse_memory_keep("0.3", [1.0, 0.5]) == [0.3, 0.3]
    with pytest.raises(ValueError, match="not a number"):
        bench.parse_ratios("half")
    with pytest.raises(ValueError, match="duplicated"):
        bench.parse_ratios("0.5,0.5")


def test_dataset_folder_and_missing_texts(tmp_path):
    from fsam2lib.videos import davis
    from fsam2lib.videos.world import WorldConfig, make_video

    video = make_video(3, WorldConfig(height=64, width=64, num_frames=8), "val", "clip")
    davis.write_video(tmp_path, video, frame_format="png")
    davis.write_image_set(tmp_path, ["clip"], split="val")
    source = bench.open_dataset(str(tmp_path), max_videos=1)
    assert source.names == ["clip"] and source.has_texts
    assert (source.load("clip").masks == video.masks).all()
    short = bench.open_dataset(str(tmp_path), frames=5).load("clip")
    assert short.num_frames == 5 and (short.masks == video.masks[:5]).all()

    (tmp_path / davis.DESCRIPTIONS_FILE).unlink()
    source = bench.open_dataset(str(tmp_path))
    assert not source.has_texts
    no_text = type("Stub", (), {"text_encoder": None, "describe_object": None})()
    assert "text cue is off" in text_setup(no_text, source, ["router"])["source"]
    with pytest.raises(ValueError, match="text_only needs object texts|'text_only' needs"):
        text_setup(no_text, source, ["router", "text_only"])
    with pytest.raises(FileNotFoundError, match="split file"):
        bench.open_dataset(str(tmp_path), split="test")


def test_long_cost_video_plays_back_and_forth():
    video = bench.cost_video(64, 130)
    assert video.num_frames == 130
    assert (video.frames[60] == video.frames[58]).all()  # 60 frames, then backwards
    assert (video.frames[118] == video.frames[0]).all()  # period 2 * 60 - 2
    assert video.masks[0].max() >= 1


def test_synthetic_world_datasets():
    source = bench.open_dataset("synthetic-held_out:val:3", frames=8)
    assert source.names == ["held_out_val_0000", "held_out_val_0001", "held_out_val_0002"]
    video = source.load("held_out_val_0001")
    assert video.num_frames == 8 and video.frames.shape[2] != video.frames.shape[1]  # not square
    again = bench.open_dataset("synthetic-held_out:val:3", frames=8).load("held_out_val_0001")
    assert np.array_equal(video.frames, again.frames)
    with pytest.raises(ValueError, match="WORLD one of"):
        bench.open_dataset("synthetic-moon:val:2")


def test_gpu_check_without_cuda_says_so_and_its_exactness_check_holds(capsys):
    from fsam2lib.bench import gpu_check

    if not torch.cuda.is_available():
        assert gpu_check.main([]) == 0
        assert "no CUDA device" in capsys.readouterr().out
    # the same exactness check the GPU run makes, here on the CPU with the micro config
    diff = gpu_check.max_logit_difference("micro", "cpu", 256, frames=4)
    assert diff <= gpu_check.EXACT_TOLERANCE


def test_gpu_check_rehearsed_on_the_cpu_writes_every_section(tmp_path, capsys):
    """The whole script with tiny settings (micro, 2 objects, 9 frames, eager only): each
    section lands in the JSON and the markdown that docs/ takes."""
    from fsam2lib.bench import gpu_check

    argv = [
        "--device=cpu",
        "--model=micro",
        "--image-size=128",
        "--frames=9",
        "--objects=1,2",
        "--lengths=9",
        "--no-compile",
        f"--out={tmp_path}",
    ]
    assert gpu_check.main(argv) == 0
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(data["sections"]) == ["exactness", "speed_eager", "memory"]
    assert data["sections"]["exactness"]["fp32_exact"] is True
    speed = data["sections"]["speed_eager"]
    assert [(r["objects"], r["config"].split()[0]) for r in speed] == [
        (1, "keep=1.00"),
        (1, "keep=0.30"),
        (2, "keep=1.00"),
        (2, "keep=0.30"),
    ]
    assert all(r["bound"] >= 1.0 for r in speed)
    assert [r["config"] for r in data["sections"]["memory"]] == [
        "stock",
        "stock+lean",
        "pruned+lean",
    ]
    markdown = (tmp_path / "gpu_check.md").read_text()
    for heading in ("## Exactness", "## Speed, eager", "## Peak memory"):
        assert heading in markdown
    assert "RANDOM weights" in markdown and "--model=micro" in markdown


def test_random_clip_weights_are_labelled_in_results():
    from fsam2lib.bench.spec import random_clip, result_header

    assert random_clip(bench.ModelSpec(clip="ViT-B-32"))
    assert not random_clip(bench.ModelSpec(clip="ViT-B-32", clip_pretrained="openai"))
    assert not random_clip(bench.ModelSpec()) and not random_clip(bench.ModelSpec(clip=None))
    text = "CLIP ViT-B-32 with RANDOM weights: text cue and descriptions meaningless"
    header = result_header("accuracy", {"weights": "trained", "text_encoder": text})
    assert header["random_clip_weights"] and "CLIP has RANDOM weights" in header["note"]
    plain = result_header("accuracy", {"weights": "trained", "text_encoder": "CLIP micro"})
    assert not plain["random_clip_weights"] and plain["note"] == "trained weights"


@pytest.mark.parametrize(("device", "runs"), [("cuda", 2), ("cpu", 1)])
def test_cuda_runs_are_measured_after_one_untimed_warm_up(monkeypatch, device, runs):
    """On CUDA a fresh process builds kernel plans per new shape on first use; the bench must
    not charge that to the measured frames (measured 2026-12-04 on an H200: 55 ms -> 8 ms of
    memory attention a frame). On CPU one run is measured as before."""
    from fsam2lib.bench import runner

    calls = []

    def fake_measure(predictor, video, config, *args, **kwargs):
        calls.append(config)
        return {"call": len(calls)}

    monkeypatch.setattr(runner, "measure_run", fake_measure)
    monkeypatch.setattr(runner, "predictor_info", lambda predictor, extra: {})
    predictor = type("Fake", (), {"device": device, "text_encoder": None})()
    job = runner._Job(spec=None, strategies=(), seed=0, config=PruningConfig(strategy="none"))
    result = runner._execute(job, video=None, built=(predictor, {}))
    assert len(calls) == runs
    assert result["run"] == {"call": runs}  # the last run is the one reported
