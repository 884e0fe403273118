#!lua
--[[
lg_get: one LangGraph checkpoint of a thread (the named one, or the latest of a
namespace) with its pending writes, sliding the idle deadline of the thread's
session and of its keys, in one atomic step (reading a thread is activity, as
reading a session's history is).

KEYS[1] session hash          lr:{b}:s:<sid>       (its expiry is the deadline)
KEYS[2] session meta hash     lr:{b}:s:<sid>:m     abs, idle, last
KEYS[3] thread data hash      lr:{b}:s:<sid>:lg:d
KEYS[4] thread order zset     lr:{b}:s:<sid>:lg:o
KEYS[5] thread message ids    lr:{b}:s:<sid>:lg:n
ARGV[1] checkpoint name ("c", NUL, namespace, NUL, checkpoint id), or "" for the latest
ARGV[2] namespace prefix: "c", NUL, namespace, NUL (read when ARGV[1] is "")
Replies:
  {1, effective_deadline_ms, name, record, write name, write record, ...}   found; the
        writes of one checkpoint (a step's tasks and channels, not the thread's history)
  {1, effective_deadline_ms}   no such checkpoint
  {-1}    expired, not yet archived (the thread's keys are deleted)
  {0}     no such session (erased, or archived; the thread's keys are deleted)
]]
local sessionKey, metaKey, dataKey, orderKey, idsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local name, prefix = ARGV[1], ARGV[2]

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
redis.call('HSET', metaKey, 'last', now)
redis.call('PEXPIREAT', dataKey, deadline)
redis.call('PEXPIREAT', orderKey, deadline)
redis.call('PEXPIREAT', idsKey, deadline)

if name == '' then
  local latest = redis.call('ZRANGE', orderKey, '(' .. prefix .. '\255', '[' .. prefix, 'BYLEX', 'REV',
                            'LIMIT', 0, 1)
  if #latest == 0 then return {1, deadline} end
  name = latest[1]
end
local record = redis.call('HGET', dataKey, name)
if not record then return {1, deadline} end
local reply = {1, deadline, name, record}
local writes = redis.call('ZRANGE', orderKey, '[w' .. string.sub(name, 2) .. '\0',
                          '(w' .. string.sub(name, 2) .. '\0\255', 'BYLEX')
for _, write in ipairs(writes) do
  reply[#reply + 1] = write
  reply[#reply + 1] = redis.call('HGET', dataKey, write)
end
return reply
