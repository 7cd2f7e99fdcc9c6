"""Every place where gradviz_lab touches module hooks, as context managers (this package: one
small module per kind of hook; every name is here).

A hook is a function PyTorch calls when a module runs forward (or backward). Hooks are how we read
a layer's activations and change how a ReLU back-propagates. A hook that is never removed keeps
changing the model long after the demo that needed it, so each context manager here removes what
it added in a ``finally`` block, also when the code inside raises.

- ``preserved_state(model)``       the model leaves exactly as it came in (``ModelState``)
- ``training_mode(model, flag)``   train/eval flags set inside, every module's own restored
- ``captured_layer(model, name, module)`` a layer's outputs, kept so gradients can be taken w.r.t. them
- ``relu_backward_rule(model, rule)`` a new backward pass through every ``nn.ReLU``
- ``forward_shapes(model)``        the output shape of every module, in the order they finish
- ``forward_outputs(model)``       the output tensor of every module, in the order they finish
- ``running_modules(model)``       the modules whose forward pass is running (to find where it failed)
- ``attention_weights(model)``     every ``nn.MultiheadAttention``'s weights softmax(q k^T / sqrt(d)),
                                   per head, kept in the graph (vision transformers)
- ``count_hooks(model)``           how many module hooks are registered (for tests and lessons)
- ``outputs_replaced(modules, f)`` each module's output replaced by f(module, its input, output)
  (LRP's and DeepLIFT's rule nodes)
- ``gradient_arrivals(params, f)`` f(name, param) each time a parameter's ``.grad`` is written
- ``at_end_of_backward(f)``        f() once the running backward pass has finished
"""

from __future__ import annotations

from .state import (
    count_hooks,
    ModelState,
    preserved_state,
    training_mode,
)
from .reading import (
    LayerRecord,
    captured_layer,
    forward_shapes,
    forward_outputs,
    running_modules,
    attention_weights,
)
from .relu import (
    ReluRule,
    FunctionalReLUWarning,
    NoReLUWarning,
    relu_backward_rule,
)
from .gradients import (
    gradient_arrivals,
    at_end_of_backward,
)
from .outputs import (
    outputs_replaced,
)
