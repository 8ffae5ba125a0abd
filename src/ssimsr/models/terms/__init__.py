"""Loss terms; every module here registers its terms (``ssimsr.registry``).

A term is ``@register_loss_term("<name>", weight="lambda_<x>")`` on a function of a
``losses.LossBatch`` returning a scalar tensor; its weight is the config key
``losses.lambda_<x>``. Keras is imported inside the functions, so the workflow can list
the terms without it. ``paper`` (Eq. 11) is imported first: its order is the loss's.
"""

FIRST = "paper"
