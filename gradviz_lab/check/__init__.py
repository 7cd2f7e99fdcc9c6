"""Exercise checkers: run a student's function against the reference on small random models.

Each ``check_<method>(student_function)`` builds a few seeded random CNNs and inputs (so a checker
cannot be passed by hard-coding), calls the student's function with the package's call shape
``f(model, x, target, **knobs)`` where ``target`` is a tensor of B class indices, compares the
result with ``gradviz_lab.attribution``, and prints one line per case. When a result is wrong and
matches a typical mistake (a magnitude forgotten, weight gradients instead of activation
gradients, the probability or the loss scored instead of the logit, ...), the line says which, as
a hint. A difference is said relative to the reference's largest value: tiny models give tiny
maps, where an absolute 0.0007 can be an error of over 100%.

A function that still raises ``NotImplementedError`` (the untouched exercise stub) gets one friendly
line instead of a traceback. Every checker returns a ``CheckReport`` whose ``passed`` is True when
all cases match.

One idea per module: ``harness`` (cases, ``run_checks``, the model-state comparison),
``attribution`` (lessons 1-6), ``training`` (lesson 8), ``attention`` (lesson 10: attention
rollout, on tiny torchvision ViTs) and ``relevance`` (lesson 11: one layer's LRP rule and the loop
over the layers). ``gradviz_lab.check_attacks`` (lesson 9) builds on the harness.
"""

# The private names re-exported below are the ones tests/test_check.py reads.
from .attention import check_attention_rollout
from .attribution import (
    _signed_gradient_max,
    check_deconvnet,
    check_gradcam,
    check_gradcam_plus_plus,
    check_guided_backprop,
    check_integrated_gradients,
    check_occlusion,
    check_saliency,
    check_smoothgrad,
)
from .harness import (
    Case,
    CheckReport,
    Method,
    _compare,
    run_checks,
    standard_cases,
    tiny_cnn,
)
from .relevance import check_layer_relevance, check_textbook_lrp
from .training import (
    _ascent_cases,
    _reference_ascent_step,
    _reference_gradient_norms,
    check_ascent_step,
    check_gradient_norms,
)

__all__ = [
    "Case",
    "CheckReport",
    "Method",
    "check_ascent_step",
    "check_attention_rollout",
    "check_deconvnet",
    "check_gradcam",
    "check_gradcam_plus_plus",
    "check_gradient_norms",
    "check_guided_backprop",
    "check_integrated_gradients",
    "check_layer_relevance",
    "check_occlusion",
    "check_saliency",
    "check_smoothgrad",
    "check_textbook_lrp",
    "run_checks",
    "standard_cases",
    "tiny_cnn",
]
