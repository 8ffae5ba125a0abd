"""How much each weighted loss term contributes to the total (issue 9: commensurate terms).

Pure Python on plain numbers (a history row and the run's lambdas), so the training loop,
the tables and the tests share one definition without importing Keras.

A term is *weighted* when its lambda is > 0. Its share is ``lambda * term / total`` with
``total`` the sum of the weighted terms (the loss's ``total``). A term *dominates* when it
exceeds the sum of the other weighted terms by more than :data:`DOMINANCE_RATIO` (100x):
the other terms then hardly move the gradient, and comparing their lambdas measures
little.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

from .. import registry

DOMINANCE_RATIO = 100.0

log = logging.getLogger("ssimsr.training.train")


def weighted_terms() -> tuple[tuple[str, str], ...]:
    """(history column, lambda name) of every registered loss term, in the loss's order."""
    return tuple((term.name, term.weight) for term in registry.loss_terms().values())


def weighted(terms: Mapping[str, float], lambdas: Mapping[str, float]) -> dict[str, float]:
    """``{term: lambda * value}`` for the terms whose lambda is > 0."""
    return {term: float(lambdas[lam]) * float(terms[term])
            for term, lam in weighted_terms() if float(lambdas[lam]) > 0}


def shares(terms: Mapping[str, float], lambdas: Mapping[str, float]) -> dict[str, float]:
    """``{term: lambda * value / total}`` of the weighted terms (NaN each when the total is 0)."""
    parts = weighted(terms, lambdas)
    total = sum(parts.values())
    return {term: (value / total if total else math.nan) for term, value in parts.items()}


def dominant(terms: Mapping[str, float], lambdas: Mapping[str, float],
             ratio: float = DOMINANCE_RATIO) -> tuple[str, float] | None:
    """``(term, factor)`` when one weighted term exceeds ``ratio`` x the sum of the others.

    ``factor`` = its weighted value / the others' (``inf`` when they are all 0). None with
    fewer than two weighted terms (nothing to drown) or when no term dominates.
    """
    parts = weighted(terms, lambdas)
    if len(parts) < 2:
        return None
    term = max(parts, key=parts.get)
    others = sum(v for k, v in parts.items() if k != term)
    if parts[term] > ratio * others:
        return term, (parts[term] / others if others else math.inf)
    return None


def describe(terms: Mapping[str, float], lambdas: Mapping[str, float]) -> str:
    """``bw_mse 12.3%, ssim_n 87.7%``: the shares of the weighted terms, for a log line."""
    return ", ".join(f"{term} {100 * share:.1f}%" for term, share in shares(terms, lambdas).items())


def check(terms: Mapping[str, float], lambdas: Mapping[str, float], when: str,
          ratio: float = DOMINANCE_RATIO) -> tuple[str, float] | None:
    """Log the shares; warn when one term dominates (see :func:`dominant`). Returns it."""
    log.info("loss shares (validation, %s): %s", when, describe(terms, lambdas) or "no weighted term")
    found = dominant(terms, lambdas, ratio)
    if found:
        term, factor = found
        lam = dict(weighted_terms())[term]
        log.warning("loss balance (%s): %s x %s = %.4g exceeds the sum of the other weighted terms by "
                    "%.3gx (> %gx); the other terms hardly steer training. Check losses.perceptual_norm "
                    "and the lambdas", when, lam, term, float(lambdas[lam]) * float(terms[term]),
                    factor, ratio)
    return found
