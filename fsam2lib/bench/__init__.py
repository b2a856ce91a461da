"""Benchmarks of token pruning for SAM2: cost (time per stage, FLOPs, memory) and accuracy
(J&F), as library functions and as a command line (``python -m fsam2lib.bench``, see
:mod:`fsam2lib.bench.cli`).

One module per job:

- ``spec``: :class:`ModelSpec` (which model, CLIP and router; or a predictor / router already
  in memory), the result header, argument checks;
- ``sources``: the synthetic cost video and datasets (:func:`open_dataset`);
- ``runner``: one measured run, and running runs in fresh subprocesses or in-process;
- ``profiling``: stage timers, memory-attention token counts and FLOPs, RSS, state bytes;
- ``efficiency``, ``accuracy`` (with the ablation and the text effect), ``memory``: the
  three kinds of run and why they are measured the way they are;
- sweeps run where ``fsam2lib.executors.Executor`` says (this process, or Ray: local or a cluster);
- ``report``: tables, comparison of two results, result files; ``plots``: figures;
- ``cli``: the command line.

Library functions (``run_efficiency``, ``run_accuracy``, ``run_ablation``, ``run_text_effect``,
``run_memory``,
the ``format_*`` tables, ``compare_results`` and the ``plot_*`` figures) return values and
never print; progress bars appear only when asked for (``progress=True``, as the CLI does).
Each ``run_*`` takes a :class:`ModelSpec` and the run's own settings as keywords::

    spec = bench.ModelSpec("sam2.1_hiera_t", weights="random", image_size=512)
    eff = bench.run_efficiency(spec, keep=[1.0, 0.5], frames=9, repeats=1)
    acc = bench.run_accuracy(bench.ModelSpec(predictor=predictor), bench.open_dataset(root))

Result JSON (all kinds): ``kind``, ``schema``, ``created``, ``versions``, the model
(``model``, ``weights``, ``weights_label``, ``random_weights``, ``random_clip_weights``, ``note``, ``image_size``,
``grid``, ``num_maskmem``, ``max_obj_ptrs_in_encoder``, ``hidden_dim``, ``mem_dim``,
``memory_attention`` dims, ``device``, ``device_name``, ``threads``, ``router``,
``text_encoder``, ``text``) and ``settings``. Then per kind:

- efficiency: ``reference`` and ``configs`` (reference first), each with ``name``,
  ``strategy``, ``keep_ratio``, ``memory_keep_ratio``, ``seconds_per_frame``,
  ``frames_per_second``, ``speedup``, ``stage_seconds`` / ``stage_share`` (per stage, see
  ``profiling.STAGES``), ``memory_attention_speedup``, ``amdahl`` (``share``,
  ``stage_speedup``, ``bound``, ``ceiling``), ``tokens`` (``query_kept``, ``query_total``,
  ``query_expected``, ``memory_frames``, ``memory_kept_per_frame``,
  ``memory_expected_per_frame``, ``pointer_tokens`` [min, max]), ``memory_attention_flops``
  (``self_attention``, ``cross_attention``, ``mlp``, ``total``), ``flops_vs_dense``,
  ``memory_bank_bytes`` (``dense``, ``kept``, ``stored``), ``objects`` (tracked at once),
  ``bound`` (speedup with memory attention and router free), ``speedup_of_bound``,
  ``baseline_rss_bytes``,
  ``peak_rss_bytes`` (None in-process), ``peak_cuda_bytes`` (None off CUDA),
  ``state_bytes_end``, and ``runs`` (per repeat: seconds, speedups, per-frame stage times).
- accuracy / ablation: ``configs`` (``name``, ``strategy``, ``keep_ratio``,
  ``memory_keep_ratio``, ``cues``, ``fill``, ``context``, ``J&F``, ``J``, ``F`` as fractions,
  ``jf_drop``, ``seconds_per_frame``, ``speedup``, ``summary`` = DAVIS statistics) and
  ``videos`` (one row per video and config: ``J``, ``F``, ``J&F``, ``jf_drop``,
  ``seconds_per_frame``, ``frames``, ``objects``).
- memory: ``memory_note``, ``rows`` (per configuration and video length: ``config``,
  ``policy``, ``frames``, ``baseline_rss_bytes``, ``peak_rss_bytes``, ``working_set_bytes``,
  ``cuda_working_set_bytes``, ``state_bytes`` by part, ``stored_bank_bytes``,
  ``stored_outputs``, ``seconds_per_frame``, ``trace``) and ``summary`` (per configuration:
  growth per frame of working set, CUDA working set and state; ``vs_stock`` ratios per length,
  ``growth_vs_stock``).
"""

from fsam2lib.bench.accuracy import run_ablation, run_accuracy, run_text_effect
from fsam2lib.bench.cli import main
from fsam2lib.bench.efficiency import run_efficiency
from fsam2lib.bench.memory import run_memory
from fsam2lib.bench.plots import (
    plot_jf_vs_keep,
    plot_memory_vs_length,
    plot_speedup_vs_objects,
    plot_stage_times,
    save_plots,
)
from fsam2lib.bench.report import (
    compare_results,
    flatten_figures,
    format_accuracy_table,
    format_comparison,
    format_efficiency_table,
    format_memory_table,
    format_result,
    write_result,
)
from fsam2lib.bench.sources import VideoSource, cost_video, open_dataset
from fsam2lib.bench.spec import ModelSpec, parse_memory_keep, parse_ratios, parse_strategies
from fsam2lib.executors import Executor

__all__ = [
    "Executor",
    "ModelSpec",
    "VideoSource",
    "compare_results",
    "cost_video",
    "flatten_figures",
    "format_accuracy_table",
    "format_comparison",
    "format_efficiency_table",
    "format_memory_table",
    "format_result",
    "main",
    "open_dataset",
    "parse_memory_keep",
    "parse_ratios",
    "parse_strategies",
    "plot_jf_vs_keep",
    "plot_memory_vs_length",
    "plot_speedup_vs_objects",
    "plot_stage_times",
    "run_ablation",
    "run_accuracy",
    "run_efficiency",
    "run_memory",
    "run_text_effect",
    "save_plots",
    "write_result",
]
