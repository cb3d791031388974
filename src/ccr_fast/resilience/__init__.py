"""Resilience policies, sans I/O: retries and backoff, retry budgets, circuit breakers, health, balancing.

Everything here is pure and deterministic: time comes in as ``now`` (``time.monotonic()`` seconds),
randomness as a seeded ``random.Random``, and every number shared across workers lives behind the
:class:`StateStore` seam. The gateway sends the requests; these classes decide where, when and whether.
"""

from ccr_fast.resilience.balancer import (
    Balancer,
    BalancerConfig,
    Deployment,
    DeploymentGroup,
    GeoConfig,
    ModelInfo,
    PickContext,
)
from ccr_fast.resilience.circuit import (
    Admission,
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakers,
    CircuitState,
)
from ccr_fast.resilience.failover import (
    Attempt,
    AttemptKind,
    AttemptPlan,
    FailoverConfig,
    StopReason,
    failover_routes,
)
from ccr_fast.resilience.health import (
    ActiveHealthConfig,
    HealthConfig,
    HealthTracker,
    PassiveHealthConfig,
    ProbeRequest,
    probe_healthy,
    probe_request,
)
from ccr_fast.resilience.outcome import (
    CANCELLED,
    NETWORK,
    TIMEOUT,
    AttemptResult,
    Outcome,
    classify,
    is_context_window_error,
)
from ccr_fast.resilience.retry import (
    BudgetConfig,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    parse_retry_after,
    upstream_should_retry,
)
from ccr_fast.resilience.runtime import CONFIG_KEYS, Resilience, ResilienceConfig
from ccr_fast.resilience.store import InProcessStore, RollingCounts, StateStore, update

__all__ = [
    "CANCELLED",
    "CONFIG_KEYS",
    "NETWORK",
    "TIMEOUT",
    "ActiveHealthConfig",
    "Admission",
    "Attempt",
    "AttemptKind",
    "AttemptPlan",
    "AttemptResult",
    "Balancer",
    "BalancerConfig",
    "BreakerConfig",
    "BudgetConfig",
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitState",
    "Deployment",
    "DeploymentGroup",
    "FailoverConfig",
    "GeoConfig",
    "HealthConfig",
    "HealthTracker",
    "InProcessStore",
    "ModelInfo",
    "Outcome",
    "PassiveHealthConfig",
    "PickContext",
    "ProbeRequest",
    "Resilience",
    "ResilienceConfig",
    "RetryBudget",
    "RetryPolicy",
    "RollingCounts",
    "StateStore",
    "StopReason",
    "backoff_delay",
    "classify",
    "failover_routes",
    "is_context_window_error",
    "parse_retry_after",
    "probe_healthy",
    "probe_request",
    "update",
    "upstream_should_retry",
]
