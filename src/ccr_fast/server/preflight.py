"""Everything checked before workers start, so a broken config exits once, listing every problem,
instead of N workers crashing: transformer chains, plugins, and the resilience sections."""

from __future__ import annotations

from ccr_fast.admission import AdmissionConfig
from ccr_fast.config import Config, ConfigError, Problem
from ccr_fast.resilience import ResilienceConfig
from ccr_fast.transformers import validate_transformers


def preflight(config: Config) -> tuple[list[Problem], list[str]]:
    """(problems, warnings) beyond what loading the config already checked."""
    problems, warnings = validate_transformers(config)
    problems = list(problems)
    warnings = list(warnings)
    try:
        resilience = ResilienceConfig.from_config(config.raw)
    except ConfigError as exc:
        problems.extend(exc.problems)
    else:
        for route, group in resilience.deployments.items():
            for i, dep in enumerate(group.deployments):
                if config.provider(dep.provider) is None:
                    problems.append(
                        Problem(f"deployments.{route}[{i}].provider", f"unknown provider '{dep.provider}'")
                    )
        warnings.extend(str(w) for w in resilience.warnings)
    try:
        redis_warnings: list[Problem] = []
        if config.raw.get("State") is not None:
            from ccr_fast.state.redis_backend import from_config as redis_from_config

            redis_from_config(config.raw.get("State"), warnings=redis_warnings)
        warnings.extend(str(w) for w in redis_warnings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        admission = AdmissionConfig.from_config(config.raw)
    except ConfigError as exc:
        problems.extend(exc.problems)
    else:
        warnings.extend(str(w) for w in admission.warnings)
    return problems, warnings
