"""Consistency probes: perturb an input, run the application on each variant,
and measure how often its answer changes when it should not (INV) or does not
change when it should (DIR)."""

from __future__ import annotations

from .perturb import COUNTERFACTUAL_KINDS, INVARIANT_KINDS, KINDS, Edit, Variant, perturb, sites

__all__ = ["KINDS", "INVARIANT_KINDS", "COUNTERFACTUAL_KINDS", "Edit", "Variant", "perturb", "sites"]
