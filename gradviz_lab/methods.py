"""The kit's attribution methods, one entry each: the one list every part of the kit reads.

    from gradviz_lab import methods
    methods.names()                  # ('saliency', 'smoothgrad', ...): `gradviz explain --method`
    methods.get("gradcam").title     # 'grad-cam': its row in the evaluation table (lesson 07)
    methods.get("smoothgrad").load() # the function itself, gradviz_lab.attribution.smoothgrad

Each ``Method`` says

- ``name``      its one spelling: ``gradviz explain --method NAME``, ``recipes.explain(..., NAME)``,
                the dashboards' menus;
- ``title``     how a table or a panel names it ("guided backprop");
- ``function``  where it lives, as "module:attribute", imported only when it is first called, so
                that this module (and ``gradviz --help``, which reads it) imports no torch;
- ``knobs``     the settings a dashboard or the command line may change, with their defaults and
                the sliders' ranges (``Knob``);
- ``light``     the knob values used where many methods are shown at once (the compare and
                evaluation dashboards), so that the whole row stays interactive;
- ``table``     the keyword arguments of ``function`` in the evaluation table of lesson 07 (cheap
                settings; a "seed" of None receives the table's seed);
- ``left_out_of`` the views it is not part of, each for a reason given beside it.

Adding a method is one entry here (``register`` for an experiment): it then appears in the command
line, the compare dashboard, the evaluation dashboards and the evaluation table. A method whose
map needs more than ``function(model, x, target, **knobs)`` gets a recipe in
``widgets/explaining.py`` (its panel title, a completeness note, ...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

BASELINES = ("black", "grey", "mean", "blur")  # what replaces the image: occlusion and IG
VIEWS = ("compare", "evaluation", "table")  # where a method can be left out (``left_out_of``)


@dataclass(frozen=True)
class Knob:
    """One setting of a method.

    default  its value when none is given; None means "chosen from the image or the model"
             (the occlusion window, the Grad-CAM layer), said in ``help``
    kind     "int", "float", "choice" (one of ``choices``) or "name" (a layer's name)
    low, high, step   a slider's range (None: it depends on the image or the model)
    """

    name: str
    default: Any
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None


@dataclass(frozen=True)
class Method:
    """One attribution method (see the module docstring for each field)."""

    name: str
    title: str
    function: str
    knobs: tuple[Knob, ...] = ()
    light: Mapping[str, Any] = field(default_factory=dict)
    table: Mapping[str, Any] = field(default_factory=dict)
    table_function: str | None = None  # the table's call, where it differs from ``function``
    left_out_of: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.left_out_of) - set(VIEWS)
        if unknown:
            raise ValueError(f"left_out_of names no view {sorted(unknown)}; views are {VIEWS}")
        foreign = set(self.light) - set(self.defaults)
        if foreign:
            raise ValueError(f"light sets {sorted(foreign)}, which are not knobs of {self.name}")

    @property
    def defaults(self) -> dict[str, Any]:
        """Every knob with its default: {name: value}."""
        return {knob.name: knob.default for knob in self.knobs}

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(f"{self.name} has no knob {name!r}; its knobs are {list(self.defaults)}")

    def load(self, for_table: bool = False) -> Callable[..., Any]:
        """The function (``table_function`` with for_table=True, where there is one), imported."""
        return load((self.table_function or self.function) if for_table else self.function)


def load(path: str) -> Callable[..., Any]:
    """"package.module:attribute" -> the attribute, importing the module."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


# ---- the knobs, shared by the methods that have them ----------------------------------------
_FEATURE = (
    Knob("layer", None, "name", "explain the strongest response of a channel of this layer "
         "instead of a class"),
    Knob("channel", 0, "int", "with layer: the channel whose strongest response is explained",
         low=0),
)
_BASELINE = Knob("baseline", "black", "choice", "what replaces the image (on the shapes models: "
                 "mean for occlusion, blur for integrated-gradients)", choices=BASELINES)

REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` (its name must be new); returns it."""
    if not isinstance(method, Method):
        raise TypeError(f"register takes a methods.Method, got {type(method).__name__}")
    if method.name in REGISTRY:
        raise ValueError(f"a method named {method.name!r} is registered already")
    REGISTRY[method.name] = method
    return method


def unregister(name: str) -> Method:
    """Remove the method ``name``; returns it."""
    return REGISTRY.pop(get(name).name)


@contextmanager
def registered(method: Method) -> Iterator[Method]:
    """``register(method)`` for the duration of a with block (experiments, tests)."""
    register(method)
    try:
        yield method
    finally:
        REGISTRY.pop(method.name, None)


def get(name: str) -> Method:
    """The method called ``name``; an unknown name lists the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def names(view: str | None = None) -> tuple[str, ...]:
    """Every method's name in registry order, or those shown in ``view`` (one of ``VIEWS``)."""
    if view is not None and view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views are {VIEWS}")
    return tuple(n for n, m in REGISTRY.items() if view is None or view not in m.left_out_of)


def light_knobs(view: str) -> dict[str, dict[str, Any]]:
    """{name: its light knob values} for the methods of ``view``, in registry order."""
    return {name: dict(REGISTRY[name].light) for name in names(view)}


def knob_names() -> tuple[str, ...]:
    """Every knob of every method, each once, in registry order."""
    return tuple(dict.fromkeys(k.name for m in REGISTRY.values() for k in m.knobs))


# ---- the kit's methods -----------------------------------------------------------------------
# Their order is the order of the evaluation table that lesson 07 prints.
for _method in (
    Method("saliency", "saliency", "gradviz_lab.attribution:saliency",
           (Knob("reduce", "max", "choice", "reduction over colour channels",
                 choices=("max", "mean")),)),
    Method("smoothgrad", "smoothgrad", "gradviz_lab.attribution:smoothgrad",
           (Knob("sigma", 0.15, "float", "noise std as a fraction of the value range (0.05 on the "
                 "shapes models, which misread noisier copies)", low=0.0, high=0.5, step=0.01),
            Knob("n_samples", 25, "int", "number of noisy copies", low=1, high=50),
            Knob("variant", "mean", "choice", "mean, squared (SmoothGrad²) or variance (VarGrad)",
                 choices=("mean", "squared", "variance")),
            Knob("seed", 0, "int", "noise seed", low=0, high=2**31 - 1)),
           light={"n_samples": 10},
           table={"n_samples": 10, "sigma": 0.15, "seed": None}),
    Method("integrated-gradients", "integrated gradients",
           "gradviz_lab.attribution:integrated_gradients",
           (Knob("steps", 32, "int", "number of path points", low=1, high=128),
            _BASELINE),
           light={"steps": 16}, table={"steps": 16}),
    Method("occlusion", "occlusion", "gradviz_lab.attribution:occlusion",
           (Knob("window", None, "int", "window side in pixels (default: image side / 4)", low=2),
            Knob("stride", None, "int", "stride in pixels (default: window / 4)", low=1),
            _BASELINE),
           table_function="gradviz_lab.evaluate.report:quarter_window_occlusion",
           # recomputed for every randomised copy, occlusion would make that dashboard wait
           left_out_of=frozenset({"evaluation"})),
    Method("gradient", "gradient", "gradviz_lab.attribution:input_gradient", _FEATURE,
           # saliency is its magnitude: the table and the comparison show that one
           left_out_of=frozenset({"compare", "table"})),
    Method("deconvnet", "deconvnet", "gradviz_lab.attribution:deconvnet", _FEATURE),
    Method("guided-backprop", "guided backprop", "gradviz_lab.attribution:guided_backprop",
           _FEATURE),
    Method("gradcam", "grad-cam", "gradviz_lab.attribution:gradcam",
           (Knob("layer", None, "name", "layer name (default: the last convolutional stage)"),)),
    Method("guided-gradcam", "guided grad-cam", "gradviz_lab.attribution:guided_gradcam",
           (Knob("layer", None, "name", "layer name (default: the last convolutional stage)"),),
           # the product of two maps already on show there
           left_out_of=frozenset({"compare", "evaluation"})),
):
    register(_method)
del _method

# ---- Grad-CAM's family (attribution/cam_family.py, cam_scores.py) ----------------------------
# Out of the comparison: one panel per idea there; the family has its own view, the variant
# selector of the Grad-CAM dashboard (lesson 05). In the evaluation table (lesson 07) at their
# defaults (the last convolutional stage), except two:
# - CAM raises on a model whose layer is not followed by global average pooling and one linear
#   layer (the digits models, VGG), and the table runs on any CNN; on the shapes models, where it
#   runs, it is Grad-CAM times h*w (lesson 05), and so is its row;
# - Eigen-CAM, whose map would not be the same on every CPU: its SVD (LAPACK) rounds its last
#   bits differently per instruction set, and the upsampled map has pixels equal up to those
#   bits, which the deletion curve then ranks in another order (its deletion AUC in lesson 07:
#   0.2456 natively, 0.2467 as on an SSE4.1 CPU, tests/emulate_cpu.py), where the table must print
#   the same digits everywhere.
# Score-CAM and Ablation-CAM are the dearest rows (one forward pass per channel and image: 1,024
# passes on lesson 07's 8 images, for the trained and the randomised model, where a gradient
# method's row costs 176; about 4 s of CPU each); the course's time budget has room for them.
# Lesson 05 and the evaluation dashboards show all eight.
_CAM_LAYER = Knob("layer", None, "name", "layer name (default: the last convolutional stage)")
_CAM_BATCH = Knob("batch_size", 64, "int", "(channel, image) pairs per forward pass", low=1,
                  high=1024)
_FAMILY_VIEWS = frozenset({"compare"})
_OUT_OF_TABLE = _FAMILY_VIEWS | {"table"}
for _method in (
    Method("cam", "cam", "gradviz_lab.attribution:cam", (_CAM_LAYER,),
           left_out_of=_OUT_OF_TABLE),
    Method("gradcam-plus-plus", "grad-cam++", "gradviz_lab.attribution:gradcam_plus_plus",
           (_CAM_LAYER,), left_out_of=_FAMILY_VIEWS),
    Method("xgradcam", "xgrad-cam", "gradviz_lab.attribution:xgradcam", (_CAM_LAYER,),
           left_out_of=_FAMILY_VIEWS),
    Method("hirescam", "hirescam", "gradviz_lab.attribution:hirescam", (_CAM_LAYER,),
           left_out_of=_FAMILY_VIEWS),
    Method("layercam", "layercam", "gradviz_lab.attribution:layercam", (_CAM_LAYER,),
           left_out_of=_FAMILY_VIEWS),
    Method("scorecam", "score-cam", "gradviz_lab.attribution:scorecam", (_CAM_LAYER, _CAM_BATCH),
           left_out_of=_FAMILY_VIEWS),
    Method("ablationcam", "ablation-cam", "gradviz_lab.attribution:ablationcam",
           (_CAM_LAYER, _CAM_BATCH), left_out_of=_FAMILY_VIEWS),
    Method("eigencam", "eigen-cam", "gradviz_lab.attribution:eigencam", (_CAM_LAYER,),
           left_out_of=_OUT_OF_TABLE),
):
    register(_method)
del _method

CAM_FAMILY = ("gradcam", "cam", "gradcam-plus-plus", "xgradcam", "hirescam", "layercam",
              "scorecam", "ablationcam", "eigencam")  # the Grad-CAM dashboard's variants

# ---- relevance propagation and DeepLIFT (attribution/lrp/, deeplift.py) -----------------------
# In the evaluation table with their defaults, said there: LRP with the epsilon-plus composite
# (LRP-z+ on every convolution, the first included, LRP-epsilon on the dense layers; no bounds to
# know, so it runs on any input range), DeepLIFT (rescale) from a black baseline.
for _method in (
    Method("lrp", "LRP", "gradviz_lab.attribution:lrp",
           (Knob("composite", "epsilon-plus", "choice", "which rule for which layer (first layer, "
                 "convolutions, dense layers)",
                 choices=("epsilon-plus", "epsilon-gamma-box", "epsilon-plus-flat",
                          "epsilon-alpha2-beta1", "lrp-0", "epsilon", "gamma", "z-plus",
                          "alpha1-beta0", "alpha2-beta1")),
            Knob("epsilon", 1e-6, "float", "LRP-epsilon's stabiliser, in units of z", low=1e-6,
                 high=1.0, step=0.01),
            Knob("gamma", 0.25, "float", "LRP-gamma's boost of positive weights", low=0.0,
                 high=2.0, step=0.05),
            Knob("maxpool", "winner", "choice", "max pooling: relevance to each window's winner, "
                 "or shared as by an average pool", choices=("winner", "average"))),
           table={"composite": "epsilon-plus"}),
    Method("input-x-gradient", "input x gradient", "gradviz_lab.attribution:input_x_gradient"),
    Method("deeplift", "DeepLIFT", "gradviz_lab.attribution:deeplift", (_BASELINE,),
           table={"baseline": "black"}),
):
    register(_method)
del _method

# ---- vision transformers (attribution/attention.py; issue 20) ---------------------------------
# Maps of a transformer's attention: on a model without nn.MultiheadAttention they raise, so they
# stay out of the views that run every method on every model (the CNN lab models among them).
_NOT_FOR_CNNS = frozenset({"compare", "evaluation", "table"})
for _method in (
    Method("attention", "attention", "gradviz_lab.attribution:attention_map",
           (Knob("block", -1, "int", "attention: which encoder block (-1: the last)", low=-12, high=11),
            Knob("head", None, "int", "attention: which head (default: the mean over heads)", low=0)),
           left_out_of=_NOT_FOR_CNNS),
    Method("attention-rollout", "attention rollout", "gradviz_lab.attribution:attention_rollout",
           (Knob("head_fusion", "mean", "choice", "attention rollout: how the heads of a block are "
                 "combined (mean: Abnar & Zuidema)", choices=("mean", "max", "min")),),
           left_out_of=_NOT_FOR_CNNS),
    Method("gradient-rollout", "gradient rollout", "gradviz_lab.attribution:gradient_rollout",
           left_out_of=_NOT_FOR_CNNS),
):
    register(_method)
del _method
