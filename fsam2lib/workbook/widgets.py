"""ipywidgets wiring for the notebooks' interactive views (frame, keep ratio, text sliders).

Why a module: ipywidgets swallows exceptions raised in callbacks, so the rendering lives in
plain functions (``fsam2lib.workbook.viz``) and this module only connects controls to them. An
:class:`Explorer` re-renders on every control change, shows the figure in its output area,
keeps it as ``.figure`` and shows (and keeps as ``.error``) any error instead of losing it.
Tests drive it by setting ``.value`` on its controls, no kernel needed.

ipywidgets is an optional dependency (``pip install fsam2lib[notebooks]``); it is imported
when an explorer is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from fsam2lib.videos.video import Video
from fsam2lib.workbook import viz


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "interactive views need ipywidgets: pip install 'fsam2lib[notebooks]'"
        ) from err
    return ipywidgets


class Explorer:
    """Controls (name -> ipywidget) whose values are passed to ``render(**values)``.

    ``widget`` is the box to display; ``figure`` the latest figure; ``error`` the latest
    error message (None after a successful render).
    """

    def __init__(self, render: Callable[..., Figure], controls: Mapping[str, object]) -> None:
        widgets = _ipywidgets()
        if not controls:
            raise ValueError("an Explorer needs at least one control")
        self.render = render
        self.controls = dict(controls)
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.error: str | None = None
        self.renders = 0
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())), self.output])
        self.update()

    def values(self) -> dict[str, object]:
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Render with the current values and show the result (or the error) in ``output``."""
        from IPython.display import clear_output, display

        try:
            fig = self.render(**self.values())
        except Exception as err:  # shown to the user: callbacks would swallow it
            self.error = f"{type(err).__name__}: {err}"
            with self.output:
                clear_output(wait=True)
                print(self.error)
            return
        self.error = None
        self.renders += 1
        if self.figure is not None and self.figure is not fig:
            plt.close(self.figure)
        self.figure = fig
        with self.output:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)  # shown once, in the output area only


def score_explorer(
    video: Video,
    scores: viz.ScoreMaps,
    obj_id: int | None = None,
    keep_ratio: float = 0.3,
    rescore: Callable[[str], viz.ScoreMaps] | None = None,
) -> Explorer:
    """Frame and keep-ratio sliders, a score-map menu and, given ``rescore`` (text ->
    ScoreMaps, e.g. re-running the predictor with that description), a text box.

    Texts already scored are cached, so going back to a text is instant.
    """
    w = _ipywidgets()
    cache = {scores.description or "": scores}
    controls = {
        "frame_idx": w.IntSlider(value=0, min=0, max=video.num_frames - 1, description="frame"),
        "keep_ratio": w.FloatSlider(
            value=keep_ratio, min=0.05, max=1.0, step=0.05, description="keep ratio"
        ),
        "name": w.Dropdown(
            options=sorted(scores.maps),
            value="combined" if "combined" in scores.maps else sorted(scores.maps)[0],
            description="score",
        ),
    }
    if rescore is not None:
        controls["text"] = w.Text(
            value=scores.description or "", description="text", continuous_update=False
        )

    def render(frame_idx: int, keep_ratio: float, name: str, text: str = "") -> Figure:
        if text not in cache:
            cache[text] = rescore(text)
        return viz.render_scores(video, cache[text], frame_idx, keep_ratio, name, obj_id)

    return Explorer(render, controls)


def mask_explorer(video: Video, predictions: Mapping[str, np.ndarray]) -> Explorer:
    """A frame slider and a menu over precomputed label maps ``[T, H, W]`` (e.g. one per keep
    ratio): ground truth and the chosen prediction side by side."""
    w = _ipywidgets()
    if not predictions:
        raise ValueError("mask_explorer needs at least one prediction")
    controls = {
        "frame_idx": w.IntSlider(value=0, min=0, max=video.num_frames - 1, description="frame"),
        "choice": w.Dropdown(options=list(predictions), description="run"),
    }

    def render(frame_idx: int, choice: str) -> Figure:
        return viz.plot_masks(video, {choice: predictions[choice]}, [frame_idx])

    return Explorer(render, controls)
