"""Training diagnostics: does the gradient reach the first layers, and what does TensorBoard show?

Gradient flow. Back-propagation multiplies the gradient by one Jacobian per layer. Through a
sigmoid, whose slope is at most 1/4, with PyTorch's default initialisation, each layer shrinks it
by a factor of about 7, so ten layers from the loss the first layer's weights receive almost no
gradient and stop learning: the *vanishing gradient*. ReLU with He initialisation (slope 1
where active, weights scaled for it; with the default initialisation ReLU alone is not enough),
batch normalisation (rescales each layer) and residual connections (x + f(x): an identity path)
keep it alive. A per-layer plot of |gradient| shows this at a glance.

- ``deep_mlp(kind, depth)``          the demo networks: sigmoid, relu, batchnorm, residual
- ``record_gradient_flow(model)``    per-layer mean/max/norm of the gradient at every backward
- ``measure_gradient_flow(...)``     one backward on one batch, the model left as it was
- ``train_steps(...)``               a short training loop that records the gradient flow
- ``plot_gradient_flow(flows)``      the per-layer plot, several networks side by side

TensorBoard (``torch.utils.tensorboard``; needs the optional ``tensorboard`` package, only for
this lesson: ``pip install 'gradviz-lab[tensorboard]'``):

- ``summary_writer(log_dir)``, ``log_gradient_histograms``, ``log_saliency_images``
- ``train_with_tensorboard(...)``    losses, gradient histograms and saliency images per epoch
- ``tensorboard_command(log_dir)``   the shell command that opens the logs in a browser

One idea per module: ``demo_nets``, ``gradient_flow`` (recording, ``train_steps``), ``plot``,
``tensorboard``, and ``cli`` (``gradviz gradient-flow``).
"""

from .cli import add_arguments, run
from .demo_nets import MLP_KINDS, ResidualBlock, deep_mlp
from .gradient_flow import (
    STATISTICS,
    GradientFlow,
    TrainingRun,
    measure_gradient_flow,
    record_gradient_flow,
    train_steps,
)
from .plot import plot_gradient_flow
from .tensorboard import (
    TENSORBOARD_MISSING,
    log_gradient_histograms,
    log_saliency_images,
    saliency_pictures,
    summary_writer,
    tensorboard_command,
    train_with_tensorboard,
)

__all__ = [
    "GradientFlow",
    "MLP_KINDS",
    "ResidualBlock",
    "STATISTICS",
    "TENSORBOARD_MISSING",
    "TrainingRun",
    "add_arguments",
    "deep_mlp",
    "log_gradient_histograms",
    "log_saliency_images",
    "measure_gradient_flow",
    "plot_gradient_flow",
    "record_gradient_flow",
    "run",
    "saliency_pictures",
    "summary_writer",
    "tensorboard_command",
    "train_steps",
    "train_with_tensorboard",
]
