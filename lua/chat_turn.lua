#!lua
--[[
chat_turn: append zero or more messages, slide the idle deadline and return
the last N messages, in one atomic step. touch, append_message, get_history
and chat_turn are all this script with different arguments.

The new deadline is min(now + max_idle, absolute deadline) on the server clock.
A session whose hash is gone is never written to, so it cannot be resurrected.
Messages past the live-history bound move, oldest first, to the overflow list,
which the archive collects with the rest; the meta hash then keeps ovf=1, so
that later turns read the overflow only when it may hold messages. A turn that
moved messages reports the overflow's length, so the caller can move a full
overflow into a segment (archive_segment) off this path.

The deadline index is not written here: the score create_session gave it is a
lower bound of the deadline (which only grows), and whoever finds an entry due
while its session still lives re-scores it (archive_session). A turn therefore
costs no index write. The last activity (field last) is kept in the meta hash,
which outlives the session hash, so that the archive knows the exact deadline
min(last + idle, abs) the session expired at. The session hash itself is only
read through PEXPIREAT, which tells whether it still lives.

Idempotent per turn: a call that appends carries a turn id, which the meta hash
keeps (field tid) in the HSET that records the activity. When the connection
breaks after a turn was written and before its reply arrived, redis-py resends
the same EVALSHA; the resend finds its own turn id, appends nothing, and
answers as the original did: the turn's timestamp (read from the end of the
history's last message, which the turn appended: a read that slid the deadline
since has moved the field last), the deadline from the last activity, and the
last N messages. It sets tid to the value it holds, which changes nothing but is
replicated: a WAIT after a resend then also covers the original turn, which
another connection may have written (a caller's retry after NotAcknowledged).
Only the last turn id is kept: a resend follows its original at once, from the
same caller, which awaits the reply before its next turn. (Were two callers to
write one session at once, a turn of the other could fall between a send and its
resend, and the resend would append again: a conversation has one writer at a
time.) The turn id is random (decimal digits) per call, or the caller's own
("c:" and the caller's id, passed again by the caller's retry of the turn), under
the same rule: a retry after the session's next turn appends again.

Token budgets and the running summary. A message record written since token
counts are stored is [role, content, metadata, tokens, ts], tokens a msgpack
uint32 (5 bytes) just before the 9-byte timestamp, so its count is read at a
fixed distance from the end without decoding the record; a record stored before
(a 4-element array, header 0x94) costs an estimate: a quarter of its bytes less
the 12 that are not content. With a budget, the script walks the newest messages
(history, then overflow) and returns the longest run whose counts sum to at most
the budget, also capped by ARGV[2]; it never reaches into segments, so a run is
at most max_history + max_overflow messages. A session created since counts are
stored (meta tk) keeps tmax, the largest count appended to it: when the messages
asked for times tmax fit the budget, no count is read. When the session has a summary
(set_summary), the context starts with it: it is reply[5] (else false), it is
charged to the budget first (a summary over the budget leaves the context
empty), and only messages after the first `through` follow it.

KEYS[1] session hash          lr:{b}:s:<sid>       (its expiry is the deadline)
KEYS[2] session meta hash     lr:{b}:s:<sid>:m     abs, idle, last, tid, ovf, base, sum, tk,
                                                   tmax
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] overflow list         lr:{b}:s:<sid>:o
KEYS[5] summary hash          lr:{b}:s:<sid>:sum   through, rec (read only when the
                                                   meta hash's sum says it exists;
                                                   optional when ARGV[2] is 0)
ARGV[1] live history bound, messages (> 0)
ARGV[2] messages to return: 0 none, N > 0 the last N (at most what the overflow and
        history hold), -P the first page of the overflow and history: at most P
        messages, from the overflow's head (a conversation's first page when it has
        no segments; read_history reads the rest); with a budget, -P means no cap
        but the live lists
ARGV[3] token budget: -1 none, B >= 0 the most tokens the returned summary and
        messages may sum to (absent: none)
ARGV[4] turn id: random digits, one per call that appends, or "c:" and the caller's
        turn id (ignored, or absent, without messages)
ARGV[5..] messages to append, each a msgpack array lacking its last element,
          the timestamp (ms), which this script appends
Replies:
  {1, effective_deadline_ms, now_ms, moved_overflow_len}   ARGV[2] = 0
  {1, effective_deadline_ms, now_ms, moved_overflow_len, summary, message...}
                                                  ARGV[2] > 0, or a budget;
                                                  oldest returned message first;
                                                  now_ms: the messages' timestamp;
                                                  moved_overflow_len: the overflow's
                                                  length when this call moved messages
                                                  into it, else 0; summary: the summary
                                                  record, or false (none, or none fits)
  {1, effective_deadline_ms, now_ms, overflow_len, base, history_len, summary, message...}
                                                  ARGV[2] < 0 without a budget; base:
                                                  the messages in segments, the absolute
                                                  position of the overflow's head
  {-1}                                             expired, not yet archived; nothing written
  {0}                                              no such session; nothing written
]]
local sessionKey, metaKey, historyKey, overflowKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local bound, want, appending = tonumber(ARGV[1]), tonumber(ARGV[2]), #ARGV > 4
local budget = tonumber(ARGV[3] or -1)

local m = redis.call('HMGET', metaKey, 'abs', 'idle', 'tid', 'last', 'ovf', 'sum', 'tk', 'tmax')
local byte = string.byte
if not m[1] then return {0} end
local absolute, idle, upgrade = tonumber(m[1]), m[2], false
if not idle then
  -- Created before the meta hash kept the activity: read it from the session hash,
  -- and move it on the first write.
  local s = redis.call('HMGET', sessionKey, 'idle', 'last', 'tid')
  if not s[1] then return {-1} end
  idle, m[3], m[4], upgrade = s[1], s[3], s[2], true
end
idle = tonumber(idle)

local now, deadline
local moved, overflowed = 0, m[5]
if appending and m[3] == ARGV[4] then
  -- A resend of the turn already stored: nothing to append.
  if redis.call('EXISTS', sessionKey) == 0 then return {-1} end
  deadline = math.min(tonumber(m[4]) + idle, absolute)
  -- The turn's timestamp ends its last message: cmsgpack packs any time after
  -- 1970-02-19 in ms as a uint64, 9 bytes.
  local newest = redis.call('LINDEX', historyKey, -1)
  now = newest and cmsgpack.unpack(string.sub(newest, -9)) or tonumber(m[4])
  redis.call('HSET', metaKey, 'tid', ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  deadline = math.min(now + idle, absolute)
  -- PEXPIREAT answers 0 when the session hash is gone (expired); a deadline that is
  -- not ahead would delete it. Either way the session has ended: nothing is written.
  if deadline <= now or redis.call('PEXPIREAT', sessionKey, deadline) == 0 then return {-1} end
  if appending then
    local stamp = cmsgpack.pack(now)
    local entries = {}
    -- tmax: the largest count appended to the session, so that a budget that cannot
    -- bind (the messages asked for times tmax fit) reads no count at all.
    local most = tonumber(m[8]) or 0
    for i = 5, #ARGV do
      local entry = ARGV[i]
      entries[i - 4] = entry .. stamp
      local k, a, b, c, d = byte(entry, -5, -1)
      if k == 206 then
        c = ((a * 256 + b) * 256 + c) * 256 + d
        if c > most then most = c end
      end
    end
    if most > (tonumber(m[8]) or 0) then
      redis.call('HSET', metaKey, 'tmax', most)
      m[8] = most
    end
    -- RPUSH in chunks of 1000: Lua's unpack has a bounded stack.
    local length = 0
    for first = 1, #entries, 1000 do
      length = redis.call('RPUSH', historyKey, unpack(entries, first, math.min(first + 999, #entries)))
    end
    local excess = length - bound
    if excess > 0 then
      local old = redis.call('LRANGE', historyKey, 0, excess - 1)
      for first = 1, #old, 1000 do
        moved = redis.call('RPUSH', overflowKey, unpack(old, first, math.min(first + 999, #old)))
      end
      redis.call('LTRIM', historyKey, excess, -1)
    end
    if upgrade then
      redis.call('HSET', metaKey, 'last', now, 'tid', ARGV[4], 'idle', idle)
    elseif moved > 0 and not overflowed then
      redis.call('HSET', metaKey, 'last', now, 'tid', ARGV[4], 'ovf', 1)
    else
      redis.call('HSET', metaKey, 'last', now, 'tid', ARGV[4])
    end
    overflowed = overflowed or moved > 0
  elseif upgrade then
    redis.call('HSET', metaKey, 'last', now, 'idle', idle)
  else
    redis.call('HSET', metaKey, 'last', now)
  end
end

if want == 0 then return {1, deadline, now, moved} end

-- The running summary: the context starts with it, and only messages after its
-- first `through` follow it.
local summary, after = false, nil
local s = m[6] and redis.call('HMGET', KEYS[5], 'through', 'rec') or {}
if s[1] then
  summary = s[2]
  local overflowLength = overflowed and redis.call('LLEN', overflowKey) or 0
  after = (tonumber(redis.call('HGET', metaKey, 'base')) or 0) + overflowLength
    + redis.call('LLEN', historyKey) - tonumber(s[1])
  if after < 0 then after = 0 end
end

-- A message's token count, or an estimate for a record stored without one. One
-- string.byte call reads the count's marker (0xce) and bytes; a session created
-- before counts were stored (no tk) may hold records without one, so there the
-- record's header (0x95: five elements) is checked too.
local counted, largest = m[7], tonumber(m[8])
local function cost(raw)
  local k, a, b, c, d = byte(raw, -14, -10)
  if k == 206 and (counted or byte(raw) == 149) then return ((a * 256 + b) * 256 + c) * 256 + d end
  return math.max(0, math.ceil((#raw - 12) / 4))
end

if budget >= 0 then
  local remaining = budget
  if summary then
    remaining = remaining - cost(summary)
    if remaining < 0 then return {1, deadline, now, moved, false} end
  end
  local cap = want
  if cap < 0 or (after and after < cap) then cap = after or math.huge end
  if cap == 0 then return {1, deadline, now, moved, summary} end
  -- Newest first: the history, then the overflow, in chunks that double.
  local first = math.min(cap, 16)
  local chunk = redis.call('LRANGE', historyKey, -first, -1)
  if counted and largest and #chunk * largest <= remaining
      and (#chunk >= cap or (#chunk < first and not overflowed)) then
    -- The budget cannot bind: no count needs reading.
    return {1, deadline, now, moved, summary, unpack(chunk)}
  end
  local i, full = #chunk, false
  while i >= 1 do
    local raw = chunk[i]
    local k, a, b, c, d = byte(raw, -14, -10)  -- cost(raw), inlined: the common case
    if k == 206 and (counted or byte(raw) == 149) then c = ((a * 256 + b) * 256 + c) * 256 + d
    else c = cost(raw) end
    if c > remaining then full = true break end
    remaining = remaining - c
    i = i - 1
  end
  local taken = #chunk - i
  if full or taken >= cap or (#chunk < first and not overflowed) then
    -- The common case: the run lies in the history's newest chunk.
    return {1, deadline, now, moved, summary, unpack(chunk, i + 1, #chunk)}
  end
  local picked = {}
  for k = #chunk, 1, -1 do picked[#chunk - k + 1] = chunk[k] end
  local function walk(fromOverflow, offset)
    -- No LLEN: a chunk shorter than asked for is the list's head.
    while not full and taken < cap do
      local n = math.min(cap - taken, math.max(16, offset))
      local part
      if fromOverflow then part = redis.call('LRANGE', overflowKey, -(offset + n), -(offset + 1))
      else part = redis.call('LRANGE', historyKey, -(offset + n), -(offset + 1)) end
      for k = #part, 1, -1 do
        local c = cost(part[k])
        if c > remaining then full = true break end
        remaining = remaining - c
        taken = taken + 1
        picked[taken] = part[k]
      end
      if #part < n then return end
      offset = offset + n
    end
  end
  if #chunk == first then walk(false, first) end
  if overflowed and not full and taken < cap then walk(true, 0) end
  local reply = {1, deadline, now, moved, summary}
  for i = taken, 1, -1 do reply[#reply + 1] = picked[i] end
  return reply
end

if want > 0 then
  if after and after < want then
    if after == 0 then return {1, deadline, now, moved, summary} end
    want = after
  end
  local live = redis.call('LRANGE', historyKey, -want, -1)
  local reply
  if #live == want or not overflowed then
    if #live <= 4000 then return {1, deadline, now, moved, summary, unpack(live)} end  -- unpack's stack
    reply = {1, deadline, now, moved, summary}
  else
    reply = {1, deadline, now, moved, summary}
    for _, m in ipairs(redis.call('LRANGE', overflowKey, #live - want, -1)) do
      reply[#reply + 1] = m
    end
  end
  for _, m in ipairs(live) do reply[#reply + 1] = m end
  return reply
end

-- The first page of the whole conversation (the caller skips what the summary covers).
local reply = {1, deadline, now, moved}
local page = -want
reply[4] = redis.call('LLEN', overflowKey)
reply[5] = tonumber(redis.call('HGET', metaKey, 'base')) or 0
reply[6] = redis.call('LLEN', historyKey)
reply[7] = summary
for _, m in ipairs(redis.call('LRANGE', overflowKey, 0, page - 1)) do reply[#reply + 1] = m end
if #reply - 7 < page then
  for _, m in ipairs(redis.call('LRANGE', historyKey, 0, page - 1 - (#reply - 7))) do
    reply[#reply + 1] = m
  end
end
return reply
