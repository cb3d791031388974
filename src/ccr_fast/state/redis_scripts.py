"""The Lua scripts the Redis backend runs: GCRA on one key, atomically, on Redis's own clock.

Each script is one ``EVALSHA`` (one round trip) and runs atomically in Redis, so any number of machines
taking from one key behave like one process, as the shared-memory limiter does for the workers of one
machine (``ccr_fast.state.gcra`` explains the algorithm).  What differs here, and why:

* **Clock.**  ``now`` is Redis ``TIME`` read inside the script, never a client's clock: machines' clocks
  differ by milliseconds or more, and a limiter fed several clocks admits the skew as extra burst.  Redis
  5+ replicates scripts by their effects, so reading ``TIME`` before a write is allowed.
* **Units.**  Lua in Redis has only doubles, which hold integers exactly up to 2**53: TIME in
  *nanoseconds* (~1.7e18) does not fit, microseconds (~1.7e15) do.  The theoretical arrival time (TAT)
  and the per-unit interval are therefore microseconds as doubles; near today's TIME a double resolves
  0.25 µs, so each update rounds by at most 0.125 µs, which is negligible next to the interval of any
  real limit.  Admission allows half a microsecond of slack (``SLACK``), below the 1 µs resolution of
  ``TIME``, so rounding can never deny a request that lands exactly on its boundary.
* **Storage.**  The TAT is written with ``%.17g`` (Lua's ``tostring`` keeps only 14 digits and would
  round it) and the key expires when the TAT has passed: an expired key and a full bucket mean the same
  thing, so idle keys clean themselves up with no loss.
* **Replies.**  Redis turns a Lua number into an integer reply by truncating it, so waits are returned
  as whole microseconds, rounded up.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CHARGE", "TAKE"]

#: KEYS[1] the TAT key; ARGV interval_us, limit_us (burst * interval), need, want (need <= want).
#: Takes as many units as fit, up to ``want`` and at least ``need``: {taken, 0}; or, when fewer than
#: ``need`` fit, takes nothing: {0, wait_us} with wait_us >= 1 until ``need`` would fit.  need = want = 0
#: only asks whether the key is overdrawn (budgets charged afterwards).
TAKE: Final = """
local SLACK = 0.5
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2]) + SLACK
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
if tat < now then tat = now end
local ahead = tat - now
local room = math.floor((limit - ahead) / interval)
if room < need then
  local wait = math.ceil(ahead + need * interval - limit)
  if wait < 1 then wait = 1 end
  return {0, wait}
end
if room > want then room = want end
if room > 0 then
  local new = tat + room * interval
  redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000) + 1)
end
return {room, 0}
"""

#: KEYS[1] the TAT key; ARGV interval_us, units.  Books ``units`` unconditionally (usage already spent,
#: possibly past the budget), leaving the key overdrawn until the debt has drained.
CHARGE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if new > now then
  redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000) + 1)
end
return 0
"""
