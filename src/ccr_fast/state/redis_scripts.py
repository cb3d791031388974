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

__all__ = ["ADJUST", "CHARGE", "PUBLISH", "READ_CLUSTER", "TAKE", "TAKE_MANY"]

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

#: KEYS the TAT keys of every limit one request must pass; ARGV four numbers per key, in KEYS order:
#: interval_us, limit_us, need, want.  All or nothing, atomically: when every key has room for its
#: ``need``, each takes as many units as fit up to its ``want`` and the reply is {1, taken_1, ...,
#: taken_n}; when any key has not, nothing is taken anywhere and the reply is {0, index, wait_us}, for
#: the key (1-based) that needs the longest wait, wait_us >= 1.  One round trip for all the limits of a
#: request, and a request refused by one limit uses up none of the others.
TAKE_MANY: Final = """
local SLACK = 0.5
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats, rooms = {}, {}
local worst, worst_wait = 0, 0
for i = 1, n do
  local a = (i - 1) * 4
  local interval = tonumber(ARGV[a + 1])
  local limit = tonumber(ARGV[a + 2]) + SLACK
  local need = tonumber(ARGV[a + 3])
  local want = tonumber(ARGV[a + 4])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local ahead = tat - now
  local room = math.floor((limit - ahead) / interval)
  if room < need then
    local wait = math.ceil(ahead + need * interval - limit)
    if wait < 1 then wait = 1 end
    if wait > worst_wait then worst, worst_wait = i, wait end
  else
    if room > want then room = want end
    tats[i], rooms[i] = tat, room
  end
end
if worst > 0 then return {0, worst, worst_wait} end
local out = {1}
for i = 1, n do
  local room = rooms[i]
  if room > 0 then
    local new = tats[i] + room * tonumber(ARGV[(i - 1) * 4 + 1])
    redis.call('SET', KEYS[i], string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000) + 1)
  end
  out[i + 1] = room
end
return out
"""

#: KEYS TAT keys; ARGV two numbers per key: interval_us, units.  Positive units are usage to book
#: (``CHARGE`` for many keys at once, each capped at a day of debt); negative units give back a
#: reservation that was not used, moving the TAT earlier (a key whose TAT falls behind now is full: it
#: is deleted).  One round trip for every settlement that accumulated meanwhile.
ADJUST: Final = """
local MAX_DEBT = 86400000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local units = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local new
  if units >= 0 then
    if tat < now then tat = now end
    local debt = units * interval
    if debt > MAX_DEBT then debt = MAX_DEBT end
    new = tat + debt
  else
    new = tat + units * interval
  end
  if new > now then
    redis.call('SET', KEYS[i], string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000) + 1)
  else
    redis.call('DEL', KEYS[i])
  end
end
return 0
"""

#: One machine's metrics, published at an interval.  KEYS: [1] the cluster totals (hash), [2] this
#: machine's baseline (hash: what it has already added), [3] its live gauges (hash), [4] the machines seen
#: (sorted set, scored by Redis time in ms), [5] the epoch of the totals (a random number, set when the
#: totals are started: a Redis that lost its data starts a new epoch).  ARGV: instance id, baseline ttl ms,
#: live ttl ms, the epoch this machine last published into ("0": never), a new epoch to use if there is
#: none, the number of live fields L, L field/value pairs, then field/value pairs of the machine's
#: monotonic totals.  Each total adds to the cluster hash what it grew by since the baseline, so a publish
#: that is repeated or overlaps another adds nothing twice.  Without a baseline, in an epoch the machine
#: has not published into (it is new, or Redis lost its data), the whole totals are added; in the epoch it
#: knows (the baseline expired while the machine could not reach Redis), the baseline is rebuilt without
#: adding: the counts of that gap are lost rather than counted twice.  Replies {1, or 2 when the baseline
#: was rebuilt; the epoch}.
PUBLISH: Final = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', KEYS[5])
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', KEYS[5], epoch)
end
-- without a baseline: in the epoch this machine knows, it expired (rebuild it, adding nothing); in
-- another, the machine is new here or Redis lost the totals (add everything)
local rebuild = epoch == ARGV[4] and redis.call('EXISTS', KEYS[2]) == 0
local live_n = tonumber(ARGV[6])
local first_total = 7 + 2 * live_n
for i = first_total, #ARGV, 2 do
  local field, value = ARGV[i], tonumber(ARGV[i + 1])
  local old = tonumber(redis.call('HGET', KEYS[2], field) or '0')
  if value > old then
    if not rebuild then redis.call('HINCRBY', KEYS[1], field, string.format('%.0f', value - old)) end
    redis.call('HSET', KEYS[2], field, ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[2], 'epoch', epoch)  -- the baseline exists from the first publish, even of zeros
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
for i = 7, first_total - 1, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[3], 'at_ms', string.format('%.0f', now_ms))
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], string.format('%.0f', now_ms), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('%.0f', now_ms - tonumber(ARGV[2])))
if rebuild then return {2, epoch} end
return {1, epoch}
"""

#: KEYS: [1] the cluster totals, [2] the machines seen.  ARGV: the prefix of live-gauge keys, how old
#: (ms) a machine's last publish may be for it to count as live.  Replies {totals as field/value pairs,
#: instance id, its live gauges as field/value pairs, ...} for the machines live now.
READ_CLUSTER: Final = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {redis.call('HGETALL', KEYS[1])}
local live = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('%.0f', now_ms - tonumber(ARGV[2])), '+inf')
for _, id in ipairs(live) do
  local gauges = redis.call('HGETALL', ARGV[1] .. id)
  if #gauges > 0 then
    out[#out + 1] = id
    out[#out + 1] = gauges
  end
end
return out
"""
