"""Admission control: who may send a request now, and when it may go on to its provider.

``config`` reads the ``RateLimit`` and ``Queue`` sections; ``ipfilter`` holds the IP blacklist and whitelist;
``limits`` the GCRA checks on shared memory and the tickets that book token usage; ``queue`` the priority
queue where requests wait for a provider slot; ``controller`` puts them together behind the two calls the
gateway makes per request.  ``docs/rate-limits.md`` describes the behaviour for users.
"""

from ccr_fast.admission.config import (
    CONFIG_KEYS,
    AdmissionConfig,
    Backpressure,
    Limits,
    Overflow,
    PressureAction,
    QueueConfig,
    Rate,
    RateLimitConfig,
)
from ccr_fast.admission.controller import AdmissionContext, AdmissionController
from ccr_fast.admission.ipfilter import IPRules, Verdict
from ccr_fast.admission.limits import NOOP_TICKET, Ticket
from ccr_fast.admission.queue import Clock, MonotonicClock

__all__ = [
    "CONFIG_KEYS",
    "NOOP_TICKET",
    "AdmissionConfig",
    "AdmissionContext",
    "AdmissionController",
    "Backpressure",
    "Clock",
    "IPRules",
    "Limits",
    "MonotonicClock",
    "Overflow",
    "PressureAction",
    "QueueConfig",
    "Rate",
    "RateLimitConfig",
    "Ticket",
    "Verdict",
]
