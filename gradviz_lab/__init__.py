"""gradviz_lab: the helper package of the gradviz-lab course kit.

Modules map to the ideas of the course:

- ``attribution``  one function per method (occlusion, saliency, SmoothGrad, ...)
- ``hooks``        the only place that touches module hooks, as context managers
- ``models``       the lab CNNs (shipped weights) and torchvision ImageNet models
- ``data``         shipped digits, procedural shapes with masks, photos, image loading
- ``viz``          maps to pictures: reduce, normalise, colour, overlay, grids, PNG
- ``widgets``      the ipywidgets dashboards used in the lessons
- ``evaluate``     sanity checks, deletion/insertion, pointing game
- ``check``        exercise checkers (and ``exercises``: solutions/ -> exercises/)
- ``train``        reproducible training of the lab models
- ``training_loop`` the one training loop (``train``, ``diagnostics``); ``blur``: the one Gaussian blur
- ``architectures``, ``shapes``, ``train_data``: the lab CNNs, the shapes dataset and the
  training batches, in their own modules (re-exported by ``models``, ``data``, ``train``)
- ``diagnostics``  gradient flow while training, TensorBoard logging
- ``featureviz``   activation maximisation, top-k activating patches
- ``explain``      ``gradviz explain``: one figure to a PNG, for slides
- ``course``       ``gradviz course``: your own copy of the course, never overwritten
- ``lab``          ``gradviz lab``: JupyterLab on that copy, on 127.0.0.1 with a fresh token
- ``shipped``      where the data and the course's notebooks are, installed or in a clone
"""

__version__ = "0.1.0"
