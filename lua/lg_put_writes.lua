#!lua
--[[
lg_put_writes: store pending writes of one LangGraph checkpoint and slide the idle
deadline of the thread's session and of its keys, in one atomic step.

As in LangGraph's own savers, a write of a regular channel (index >= 0) is kept
when one of its task and index is already stored (HSETNX: a resend changes
nothing), and a write of a special channel (negative index: errors, interrupts)
replaces the stored one. The deadline slides as in lg_put.

KEYS[1] session hash          lr:{b}:s:<sid>       (its expiry is the deadline)
KEYS[2] session meta hash     lr:{b}:s:<sid>:m     abs, idle, last
KEYS[3] thread data hash      lr:{b}:s:<sid>:lg:d
KEYS[4] thread order zset     lr:{b}:s:<sid>:lg:o
KEYS[5] thread message ids    lr:{b}:s:<sid>:lg:n
ARGV[1..] triples: write name ("w", NUL, namespace, NUL, checkpoint id, NUL, task id,
          NUL, index), write record (msgpack), replace flag ("1" replaces, "0" keeps)
Replies:
  {1, effective_deadline_ms}   stored
  {-1}    expired, not yet archived; nothing written (the thread's keys are deleted)
  {0}     no such session (erased, or archived); nothing written (the thread's keys are
          deleted)
]]
local sessionKey, metaKey, dataKey, orderKey, idsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local m = redis.call('HMGET', metaKey, 'abs', 'idle')
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
for i = 1, #ARGV - 2, 3 do
  local name, record, replace = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if replace == '1' then
    redis.call('HSET', dataKey, name, record)
  else
    redis.call('HSETNX', dataKey, name, record)
  end
  redis.call('ZADD', orderKey, 0, name)
end
redis.call('HSET', metaKey, 'last', now)
redis.call('PEXPIREAT', dataKey, deadline)
redis.call('PEXPIREAT', orderKey, deadline)
redis.call('PEXPIREAT', idsKey, deadline)
return {1, deadline}
