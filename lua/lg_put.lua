#!lua
--[[
lg_put: store one LangGraph checkpoint of a thread (a session) and append the new
messages of its conversation to the session's history, sliding the idle deadline of
the session and of the thread's keys, in one atomic step.

The deadline slides as chat_turn slides it: min(now + max_idle, absolute deadline)
on the server clock, with the activity recorded in the meta hash (field last), and
a session whose hash is gone is never written to. The thread's keys (KEYS[5..7])
get the same PEXPIREAT, so they expire with the session; when the session has
ended they are deleted here. A message is appended only when its id is new to the
thread (HSETNX on the id hash), so a resend of this call, or a later checkpoint
that still holds the message, appends nothing again. Appended messages past the
live-history bound move to the overflow list, as chat_turn moves them; the reply
gives the overflow's length so that the caller moves a full one into a segment.
Of a namespace, at most ARGV[5] checkpoints are kept: older ones and their
pending writes are dropped here, at most 100 per call (the messages they held are
already in the history).

KEYS[1] session hash          lr:{b}:s:<sid>       (its expiry is the deadline)
KEYS[2] session meta hash     lr:{b}:s:<sid>:m     abs, idle, last, ovf
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] overflow list         lr:{b}:s:<sid>:o
KEYS[5] thread data hash      lr:{b}:s:<sid>:lg:d  checkpoint, run id and write records
KEYS[6] thread order zset     lr:{b}:s:<sid>:lg:o  the same names, score 0, by lex order
KEYS[7] thread message ids    lr:{b}:s:<sid>:lg:n  id -> 1, of messages appended
ARGV[1] live history bound, messages (> 0)
ARGV[2] checkpoint name: "c", NUL, namespace, NUL, checkpoint id ("" stores none)
ARGV[3] checkpoint record (msgpack)
ARGV[4] namespace prefix: "c", NUL, namespace, NUL
ARGV[5] checkpoints kept per namespace, count (> 0)
ARGV[6] the checkpoint's run id ("" when none), kept under "r" NUL namespace NUL checkpoint id
ARGV[7..] pairs: message id, message (a msgpack array lacking its timestamp, ms,
          which is appended here)
Replies:
  {1, effective_deadline_ms, moved_overflow_len, appended}   stored; moved_overflow_len:
                                                  the overflow's length when this call
                                                  moved messages into it, else 0
  {-1}    expired, not yet archived; nothing written (the thread's keys are deleted)
  {0}     no such session (erased, or archived); nothing written (the thread's keys are
          deleted)
]]
local sessionKey, metaKey, historyKey, overflowKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dataKey, orderKey, idsKey = KEYS[5], KEYS[6], KEYS[7]
local bound, name, prefix, keep = tonumber(ARGV[1]), ARGV[2], ARGV[4], tonumber(ARGV[5])

local m = redis.call('HMGET', metaKey, 'abs', 'idle', 'ovf')
if not m[1] or not m[2] then
  redis.call('DEL', dataKey, orderKey, idsKey)
  return {0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = math.min(now + tonumber(m[2]), tonumber(m[1]))
if deadline <= now or redis.call('PEXPIREAT', sessionKey, deadline) == 0 then
  redis.call('DEL', dataKey, orderKey, idsKey)
  return {-1}
end

if name ~= '' then
  redis.call('HSET', dataKey, name, ARGV[3])
  redis.call('ZADD', orderKey, 0, name)
  if ARGV[6] ~= '' then redis.call('HSET', dataKey, 'r' .. string.sub(name, 2), ARGV[6]) end
  local old = redis.call('ZRANGE', orderKey, '(' .. prefix .. '\255', '[' .. prefix, 'BYLEX', 'REV',
                         'LIMIT', keep, 100)
  for _, member in ipairs(old) do
    local writes = '[w' .. string.sub(member, 2) .. '\0'
    for _, write in ipairs(redis.call('ZRANGE', orderKey, writes, '(w' .. string.sub(member, 2) .. '\0\255',
                                      'BYLEX')) do
      redis.call('ZREM', orderKey, write)
      redis.call('HDEL', dataKey, write)
    end
    redis.call('ZREM', orderKey, member)
    redis.call('HDEL', dataKey, member, 'r' .. string.sub(member, 2))
  end
end

local entries = {}
local stamp = cmsgpack.pack(now)
for i = 7, #ARGV - 1, 2 do
  if redis.call('HSETNX', idsKey, ARGV[i], 1) == 1 then
    entries[#entries + 1] = ARGV[i + 1] .. stamp
  end
end
local moved = 0
if #entries > 0 then
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
end
if moved > 0 and not m[3] then
  redis.call('HSET', metaKey, 'last', now, 'ovf', 1)
else
  redis.call('HSET', metaKey, 'last', now)
end
redis.call('PEXPIREAT', dataKey, deadline)
redis.call('PEXPIREAT', orderKey, deadline)
redis.call('PEXPIREAT', idsKey, deadline)
return {1, deadline, moved, #entries}
