"""Choosing the provider and model for each request: CCR's rules, session ids, custom routers."""

from ccr_fast.routing.custom import CustomRouter, RouterRequest, load_custom_router
from ccr_fast.routing.rules import RouteDecision, Router, RoutingConfig
from ccr_fast.routing.session import SessionUsage, session_id, usage_input_tokens

__all__ = [
    "CustomRouter",
    "RouteDecision",
    "Router",
    "RouterRequest",
    "RoutingConfig",
    "SessionUsage",
    "load_custom_router",
    "session_id",
    "usage_input_tokens",
]
