"""CCR's transformer chains, compiled once per provider/model into an immutable :class:`Plan`."""

from ccr_fast.transformers.plan import Plan, PlanCache, build_plan, validate_transformers
from ccr_fast.transformers.registry import REGISTRY, describe_transformers

__all__ = ["REGISTRY", "Plan", "PlanCache", "build_plan", "describe_transformers", "validate_transformers"]
