"""One dashboard per lesson topic. Each is a ``Dashboard`` (an ``ipywidgets.VBox``) whose knobs
are the method's knobs; ``explanations`` says which maps to compute for the current settings.

The maps come from ``recipes.explain`` (``explaining.py``), the same code as the ``gradviz explain`` command, so a
figure on a slide and the live dashboard agree for the same settings.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure  # noqa: F401 (type hints)

from .. import attribution, methods, viz
from ..methods import BASELINES
from .base import WIDE, Dashboard, Picture
from .explaining import Explanation, conv_layers, guided_gradcam_map
from .gallery import default_knobs

SLIDER = {"continuous_update": False, "style": WIDE}  # recompute on release, not on every pixel


def clip_slider() -> widgets.FloatSlider:
    """Display only: the percentile of |map| that gets the brightest colour (``viz.normalize``)."""
    return widgets.FloatSlider(
        value=99.5, min=90.0, max=100.0, step=0.5, description="clip %", **SLIDER
    )


class OcclusionDashboard(Dashboard):
    """Lesson 1: hide a window of the image, see how much the score drops (Zeiler & Fergus 2014)."""

    heading = "Occlusion sensitivity: score drop when a window is hidden"

    def make_knobs(self):
        side = min(self.images.shape[-2:])
        return {
            "window": widgets.IntSlider(
                value=max(2, side // 4),
                min=2,
                max=max(2, side // 2),
                description="window",
                **SLIDER,
            ),
            "stride": widgets.IntSlider(
                value=max(1, side // 16),
                min=1,
                max=max(1, side // 4),
                description="stride",
                **SLIDER,
            ),
            "baseline": widgets.Dropdown(
                options=BASELINES, value=self.default_baseline(), description="baseline"
            ),
        }

    def default_baseline(self) -> str:
        """Black on the digits (their background), the image's mean colour on the shapes: there a
        black window draws a dark square, a new shape, instead of removing information (lesson 1)."""
        return default_knobs("occlusion", self.gallery_name)["baseline"]

    def on_knobs_changed(self):
        with self.quietly():  # a stride longer than the window would leave pixels never hidden
            self.knobs["stride"].max = self.knobs["window"].value

    def explanations(self, index, target):
        k = {name: control.value for name, control in self.knobs.items()}
        return [self.explained("occlusion", index, target, **k)]


class SaliencyDashboard(Dashboard):
    """Lesson 2: the gradient of the class score w.r.t. the pixels (Simonyan et al. 2014)."""

    heading = "Saliency: |d score / d pixel|"

    def make_knobs(self):
        return {
            "reduce": widgets.ToggleButtons(
                options=["max", "mean"], value="max", description="channels"
            ),
            "clip": clip_slider(),
        }

    def explanations(self, index, target):
        return [self.explained("saliency", index, target, reduce=self.knobs["reduce"].value)]


class SmoothGradDashboard(Dashboard):
    """Lesson 3: average the gradient over noisy copies of the image (Smilkov et al. 2017)."""

    heading = "SmoothGrad: the gradient averaged over noisy copies"

    def default_sigma(self) -> float:
        """The paper's 15% of the value range, except on the shapes galleries: the shapes models
        stop recognising their noisy copies beyond about 5% (lesson 3), and SmoothGrad would
        then average the gradients of images the model sees as another class."""
        return default_knobs("smoothgrad", self.gallery_name)["sigma"]

    def make_knobs(self):
        return {
            "sigma": widgets.FloatSlider(
                value=self.default_sigma(), min=0.0, max=0.5, step=0.01, description="noise σ",
                **SLIDER,
            ),
            "n_samples": widgets.IntSlider(
                value=25, min=1, max=50, description="samples N", **SLIDER
            ),
            "variant": widgets.Dropdown(
                options=["mean", "squared", "variance"], value="mean", description="variant"
            ),
            "seed": widgets.BoundedIntText(
                value=0,
                min=0,
                max=2**31 - 1,
                description="seed",
                layout=widgets.Layout(width="160px"),
            ),
        }

    def explanations(self, index, target):
        k = {name: control.value for name, control in self.knobs.items()}
        return [
            self.explained("gradient", index, target),
            self.explained("smoothgrad", index, target, **k),
        ]


class ReluRulesDashboard(Dashboard):
    """Lesson 4: the same backward pass with three rules at each ReLU -- gradient, deconvnet
    (Zeiler & Fergus 2014), guided backpropagation (Springenberg et al. 2015) -- for a class
    score or for the strongest response of one channel of a layer."""

    heading = "Gradient vs deconvnet vs guided backpropagation"
    methods = ("gradient", "deconvnet", "guided-backprop")

    def make_knobs(self):
        self.layers = dict(conv_layers(self.model, self.images[:1]))
        names = list(self.layers)
        if not names:
            raise ValueError(
                "the model has no Conv2d layer whose feature response could be explained"
            )
        return {
            "explain": widgets.ToggleButtons(
                options=["class score", "feature response"],
                value="class score",
                description="explain",
            ),
            "layer": widgets.Dropdown(
                options=names, value=names[-1], description="layer", disabled=True
            ),
            "channel": widgets.IntSlider(
                value=0,
                min=0,
                max=self.layers[names[-1]] - 1,
                description="channel",
                disabled=True,
                **SLIDER,
            ),
            "clip": clip_slider(),
        }

    def on_knobs_changed(self):
        feature = self.knobs["explain"].value == "feature response"
        with self.quietly():
            self.knobs["layer"].disabled = self.knobs["channel"].disabled = not feature
            self.knobs["channel"].max = self.layers[self.knobs["layer"].value] - 1
        self.target.disabled = feature

    def explanations(self, index, target):
        if self.knobs["explain"].value == "class score":
            return [self.explained(m, index, target) for m in self.methods]
        feature = {"layer": self.knobs["layer"].value, "channel": int(self.knobs["channel"].value)}
        return [self.explained(m, index, None, **feature) for m in self.methods]


# the Grad-CAM dashboard's variants (``methods.CAM_FAMILY``) as their papers spell them
VARIANT_TITLES = {
    "gradcam": "Grad-CAM", "cam": "CAM", "gradcam-plus-plus": "Grad-CAM++",
    "xgradcam": "XGrad-CAM", "hirescam": "HiResCAM", "layercam": "LayerCAM",
    "scorecam": "Score-CAM", "ablationcam": "Ablation-CAM", "eigencam": "Eigen-CAM",
}


class GradCamDashboard(Dashboard):
    """Lesson 5: the feature maps of a layer weighted by their mean gradient (Selvaraju et al.
    2017), over the image, and Guided Grad-CAM beside it. The variant selector swaps Grad-CAM for
    another member of its family (``methods.CAM_FAMILY``: CAM, Grad-CAM++, ..., Eigen-CAM), and
    the guided map for guided backpropagation times that variant's map."""

    heading = "Grad-CAM and Guided Grad-CAM"
    main = 0

    def make_knobs(self):
        # one probe of the model gives both the choices and the default (their last)
        names = attribution.cam_layers(self.model, self.images[:1])  # pooling left out
        if not names:
            raise ValueError("no layer of the model outputs a (B, K, h, w) map: Grad-CAM needs one")
        return {
            "layer": widgets.Dropdown(options=names, value=names[-1], description="layer"),
            "alpha": widgets.FloatSlider(
                value=0.5, min=0.0, max=1.0, step=0.05, description="overlay α", **SLIDER
            ),
            "variant": widgets.Dropdown(
                options=[(VARIANT_TITLES[m], m) for m in methods.CAM_FAMILY], value="gradcam",
                description="variant",
            ),
        }

    def explanations(self, index, target):
        """The variant's map once per change: the guided map multiplies it by guided backprop
        (computed once per image and class, whatever the layer and variant) instead of
        computing it again."""
        layer, variant = self.knobs["layer"].value, self.knobs["variant"].value
        cam = self._variant_map(variant, index, target, layer)
        key = ("guided-gradcam", variant, index, target, layer)
        return [cam, self.cache.get(key, lambda: self._guided_gradcam(index, target, layer, cam))]

    def _variant_map(self, variant: str, index: int, target: int, layer: str) -> Explanation:
        """Grad-CAM's own recipe, or the variant's registered function titled and overlaid as
        Grad-CAM is ("Score-CAM features.9")."""
        if variant == "gradcam":
            return self.explained("gradcam", index, target, layer=layer)
        found = self.explained(variant, index, target, layer=layer)
        title = f"{VARIANT_TITLES[variant]} {layer}"
        return Explanation(variant, found.target, found.target_name,
                           {title: next(iter(found.maps.values()))}, {title}, found.note)

    def _guided_gradcam(self, index: int, target: int, layer: str, cam: Explanation) -> Explanation:
        guided = self.cache.get(
            ("guided-backprop input gradient", index, target),
            lambda: attribution.guided_backprop(self.model, self.images[index : index + 1], target),
        )
        combined = guided_gradcam_map(guided, next(iter(cam.maps.values())))
        return Explanation("guided-gradcam", cam.target, cam.target_name,
                           {f"guided {VARIANT_TITLES[cam.method]} {layer}": combined})


class IntegratedGradientsDashboard(Dashboard):
    """Integrated gradients (Sundararajan et al. 2017): (x - x') times the mean gradient on the
    path from a baseline x' to x; the attributions add up to f(x) - f(x')."""

    heading = "Integrated gradients: signed, and complete"

    def default_baseline(self) -> str:
        """Black, except on the shapes galleries: their models score the black image highly for
        some classes, leaving F(x) - F(black) near zero (lesson 6); there, the blurred image."""
        return default_knobs("integrated-gradients", self.gallery_name)["baseline"]

    def make_knobs(self):
        return {
            "steps": widgets.IntSlider(value=32, min=1, max=128, description="steps", **SLIDER),
            "baseline": widgets.Dropdown(
                options=BASELINES, value=self.default_baseline(), description="baseline"
            ),
        }

    def explanations(self, index, target):
        k = {name: control.value for name, control in self.knobs.items()}
        return [self.explained("integrated-gradients", index, target, **k)]


class CompareDashboard(Dashboard):
    """Every method on the same image and class, with the dashboards' default knobs (lighter
    SmoothGrad and integrated gradients, so the whole row stays interactive)."""

    heading = "All methods side by side"
    grid_options = {"panel_inches": 2.4, "colorbar": False, "font_size": 14}

    def make_knobs(self):
        return {"clip": clip_slider()}

    @property
    def methods(self) -> dict[str, dict]:
        """{method: knobs}: every method of the registry's "compare" view, light knobs."""
        return methods.light_knobs("compare")

    def explanations(self, index, target):
        return [self.explained(m, index, target, **k) for m, k in self.methods.items()]


class ImagePickerDashboard(Dashboard):
    """Flick through the shipped images with a slider; see each one with the model's top classes."""

    heading = "Images and what the model predicts"
    top = 5

    def make_image_control(self):
        return widgets.IntSlider(
            value=0, min=0, max=len(self.images) - 1, description="image", **SLIDER
        )

    @property
    def controls(self):
        return {"image": self.image}  # nothing to explain: no target

    def render(self):
        """Not an explanation: the image beside its top classes, on the dashboards' frame."""
        index = int(self.image.value)
        figure = picture_with_top_classes(
            self.images[index], self.probabilities(index), self.class_names, self.top
        )
        name = html.escape(self.image_names[index])
        caption = (
            f"<div style='font-size:15px'><b>{name}</b> ({index + 1} of {len(self.images)})</div>"
        )
        return Picture(viz.figure_to_png(figure, dpi=self.dpi, compress_level=1), caption, figure)

    @property
    def selected_image(self) -> torch.Tensor:
        """The (C, H, W) image on show: hand it to any method or dashboard."""
        return self.images[int(self.image.value)]


def picture_with_top_classes(
    image: torch.Tensor, probabilities: torch.Tensor, class_names: list[str], top: int = 5
) -> Figure:
    """The image beside a bar chart of its ``top`` most probable classes."""
    p = probabilities.detach().cpu().numpy()
    best = np.argsort(-p)[: min(top, len(p))]
    figure = viz.NotebookFigure(figsize=(7.5, 3.2))
    figure.subplots_adjust(left=0.02, right=0.97, top=0.9, bottom=0.15, wspace=0.55)
    image_ax, bars_ax = figure.subplots(1, 2, width_ratios=[1.0, 1.3])
    image_ax.imshow(viz.to_rgb(image), interpolation="nearest")
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    colour = matplotlib.colormaps[viz.SEQUENTIAL_CMAP](0.6)
    bars_ax.barh(np.arange(len(best))[::-1], p[best], color=colour)
    bars_ax.set_yticks(np.arange(len(best))[::-1], [class_names[i] for i in best], fontsize=14)
    bars_ax.set_xlim(0, 1)
    bars_ax.set_xlabel("probability", fontsize=13)
    bars_ax.set_title(f"predicted: {class_names[best[0]]}", fontsize=16)
    return figure
