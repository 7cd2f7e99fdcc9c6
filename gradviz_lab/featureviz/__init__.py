"""Feature visualisation: which image a unit wants to see, and which patches excite it most.

Two ways to ask what a class or a channel responds to:

1. Synthesise it. *Activation maximisation* (Simonyan, Vedaldi & Zisserman 2014) climbs the
   gradient of a score S with respect to the *input*, the weights fixed:

       x* = argmax_x  S(x) - l2 * ||x - 0.5||^2,    x in [0, 1]^(C x H x W)

   Left alone, the ascent finds high-frequency noise the network happens to like; regularisers
   keep the image natural: the L2 term pulls pixels to mid-grey and a Gaussian blur every few
   steps removes high frequencies (both from Yosinski et al. 2015), and a random shift (jitter,
   from DeepDream: Mordvintsev, Olah & Tyka 2015) before each step stops the image from
   exploiting exact pixel positions.
   ``class_visualisation`` maximises a class logit, ``channel_visualisation`` a channel's mean.

2. Find it in the data. Zeiler & Fergus (2014) show, for each channel, the 9 images whose
   strongest activation is highest, cropped to that unit's *receptive field* (the input pixels
   it can see), beside the deconvnet view of that unit. ``top_activating_patches`` does this for
   any channel of a chain of conv/pool layers, ``unit_views`` adds the deconvnet or guided-
   backprop views, ``plot_top_patches`` draws them.

``activation_maximisation_dashboard`` is a widget over the class and the regularisation strength.

One idea per module:

- ``ascent``           activation maximisation, class and channel visualisation
- ``receptive_field``  which input pixels a unit can see
- ``top_patches``      top-k activating patches, their unit views, the figure
- ``dashboard``        the class x regularisation-strength widget
- ``gradviz_lab.blur`` the Gaussian blur the ascent uses (``gaussian_blur``, re-exported here)
"""

from ..blur import gaussian_blur
from .ascent import (
    AscentSettings,
    activation_maximisation,
    channel_visualisation,
    class_visualisation,
)
from .dashboard import activation_maximisation_dashboard
from .receptive_field import ReceptiveField, receptive_field
from .top_patches import VIEW_METHODS, TopPatches, plot_top_patches, top_activating_patches, unit_views

__all__ = [
    "AscentSettings",
    "ReceptiveField",
    "TopPatches",
    "VIEW_METHODS",
    "activation_maximisation",
    "activation_maximisation_dashboard",
    "channel_visualisation",
    "class_visualisation",
    "gaussian_blur",
    "plot_top_patches",
    "receptive_field",
    "top_activating_patches",
    "unit_views",
]
