"""Live dashboards for the lessons, built on ipywidgets.

Each function returns a dashboard, which is an ``ipywidgets.VBox``: make it the last expression
of a cell and it shows itself (or ``display(dash)``). With no arguments it loads the lab model
and shipped images of ``gallery_name`` ("shapes" by default; "digits", "shapes-tagged",
"shapes-softplus", or an ImageNet model name with the shipped photos); pass ``model``,
``images`` (N, C, H, W) in [0, 1] and ``class_names`` to explain your own.

    from gradviz_lab.widgets import gradcam_dashboard
    gradcam_dashboard()                        # Grad-CAM of the shapes model, live

    dash = smoothgrad_dashboard(gallery_name="digits")
    dash.controls["sigma"].value = 0.3         # what a slider does; the picture is redrawn
    dash.last_map                              # the (H, W) map on show, as a NumPy array

| function                       | lesson                         | knobs                         |
|--------------------------------|--------------------------------|-------------------------------|
| image_picker                   | the images and predictions     | image (slider)                |
| occlusion_dashboard            | 1 occlusion                    | window, stride, baseline      |
| saliency_dashboard             | 2 saliency                     | channel reduction, clip %     |
| smoothgrad_dashboard           | 3 SmoothGrad                   | noise sigma, N, variant, seed |
| relu_rules_dashboard           | 4 deconvnet vs guided backprop | class or layer+channel, clip  |
| gradcam_dashboard              | 5 Grad-CAM / Guided Grad-CAM   | layer, overlay alpha          |
| integrated_gradients_dashboard | integrated gradients           | steps, baseline               |
| compare_dashboard              | all methods side by side       | clip %                        |
| randomisation_dashboard        | evaluating explanations        | randomised layers, method     |
| deletion_dashboard             | evaluating explanations        | map, fill, fraction removed   |
| activation_maximisation_dashboard | 8 class visualisation       | class, L2 strength            |
| lrp_dashboard                  | 11 relevance propagation       | composite or rule per group, ε, γ, max pool, model |
| vit_dashboard                  | 10 vision transformers         | method, block, head, overlay α |

Every dashboard but the picker and the class visualisation also has "image" and "target" (a
class, or the predicted one); the class visualisation takes a model and its class names
(``activation_maximisation_dashboard(model, class_names, image_shape, **ascent_knobs)``).

The maps come from ``gradviz_lab.widgets.recipes.explain`` (each method with the knobs of its
dashboard), the same code as the ``gradviz explain`` command that writes a figure for a slide.

Results are cached per image, class and knob values, so going back to a setting is instant;
long work shows a progress bar; an error raised while redrawing is shown in the dashboard (and
logged), never lost. Sliders recompute when released (``continuous_update=False``).
"""

from __future__ import annotations

from .base import Dashboard
from .dashboards import (
    CompareDashboard,
    GradCamDashboard,
    ImagePickerDashboard,
    IntegratedGradientsDashboard,
    OcclusionDashboard,
    ReluRulesDashboard,
    SaliencyDashboard,
    SmoothGradDashboard,
)
from .ascent import activation_maximisation_dashboard
from .evaluation import DeletionDashboard, RandomisationDashboard
from .attack import AttackDashboard, attack_dashboard  # noqa: F401 (lesson 09: widgets.attack_dashboard)
from .lrp import LrpDashboard, lrp_dashboard  # noqa: F401 (lesson 11: widgets.lrp_dashboard)
from .vit import VitDashboard, vit_dashboard  # noqa: F401 (lesson 10: widgets.vit_dashboard)


def _factory(cls: type[Dashboard], name: str):
    def make(model=None, images=None, class_names=None, *, image_names=None, gallery_name="shapes"):
        return cls(model, images, class_names, image_names=image_names, gallery_name=gallery_name)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = (
        f"{cls.__doc__}\n\n    Returns a {cls.__name__} (an ipywidgets.VBox that displays itself). "
        "Arguments: see the gradviz_lab.widgets module docstring."
    )
    return make


image_picker = _factory(ImagePickerDashboard, "image_picker")
occlusion_dashboard = _factory(OcclusionDashboard, "occlusion_dashboard")
saliency_dashboard = _factory(SaliencyDashboard, "saliency_dashboard")
smoothgrad_dashboard = _factory(SmoothGradDashboard, "smoothgrad_dashboard")
relu_rules_dashboard = _factory(ReluRulesDashboard, "relu_rules_dashboard")
gradcam_dashboard = _factory(GradCamDashboard, "gradcam_dashboard")
integrated_gradients_dashboard = _factory(
    IntegratedGradientsDashboard, "integrated_gradients_dashboard"
)
compare_dashboard = _factory(CompareDashboard, "compare_dashboard")
randomisation_dashboard = _factory(RandomisationDashboard, "randomisation_dashboard")
deletion_dashboard = _factory(DeletionDashboard, "deletion_dashboard")

DASHBOARDS = {
    "image_picker": image_picker,
    "occlusion": occlusion_dashboard,
    "saliency": saliency_dashboard,
    "smoothgrad": smoothgrad_dashboard,
    "relu_rules": relu_rules_dashboard,
    "gradcam": gradcam_dashboard,
    "integrated_gradients": integrated_gradients_dashboard,
    "compare": compare_dashboard,
    "randomisation": randomisation_dashboard,
    "deletion": deletion_dashboard,
}

__all__ = [
    "Dashboard",
    "DASHBOARDS",
    "image_picker",
    "occlusion_dashboard",
    "saliency_dashboard",
    "smoothgrad_dashboard",
    "relu_rules_dashboard",
    "gradcam_dashboard",
    "integrated_gradients_dashboard",
    "compare_dashboard",
    "randomisation_dashboard",
    "deletion_dashboard",
    "activation_maximisation_dashboard",
]
