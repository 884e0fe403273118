#!lua
--[[
lg_copy: copy every LangGraph checkpoint and pending write of one thread into
another thread of the same user (both sessions live in the user's slot), sliding
the idle deadline of the target session and of its keys. The source is read
only. The target's conversation is appended by a following lg_put.

KEYS[1] source session hash   lr:{b}:s:<sid>
KEYS[2] source data hash      lr:{b}:s:<sid>:lg:d
KEYS[3] source order zset     lr:{b}:s:<sid>:lg:o
KEYS[4] target session hash   lr:{b}:s:<sid2>      (its expiry is the deadline)
KEYS[5] target meta hash      lr:{b}:s:<sid2>:m    abs, idle, last
KEYS[6] target data hash      lr:{b}:s:<sid2>:lg:d
KEYS[7] target order zset     lr:{b}:s:<sid2>:lg:o
KEYS[8] target message ids    lr:{b}:s:<sid2>:lg:n
ARGV    none
Replies:
  {1, copied}   copied: how many records (checkpoints and writes) were copied; 0 when
                the source is not live
  {-1}    the target has expired, not yet archived; nothing written
  {0}     no such target session; nothing written
]]
local sourceKey, sourceData, sourceOrder = KEYS[1], KEYS[2], KEYS[3]
local targetKey, metaKey, targetData, targetOrder, idsKey = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local m = redis.call('HMGET', metaKey, 'abs', 'idle')
if not m[1] or not m[2] then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = math.min(now + tonumber(m[2]), tonumber(m[1]))
if deadline <= now or redis.call('PEXPIREAT', targetKey, deadline) == 0 then return {-1} end
redis.call('HSET', metaKey, 'last', now)
local copied = 0
if redis.call('EXISTS', sourceKey) == 1 then
  local names = redis.call('ZRANGE', sourceOrder, 0, -1)
  for _, name in ipairs(names) do
    local record = redis.call('HGET', sourceData, name)
    if record then
      redis.call('HSET', targetData, name, record)
      redis.call('ZADD', targetOrder, 0, name)
      copied = copied + 1
      local run = redis.call('HGET', sourceData, 'r' .. string.sub(name, 2))
      if run then redis.call('HSET', targetData, 'r' .. string.sub(name, 2), run) end
    end
  end
end
redis.call('PEXPIREAT', targetData, deadline)
redis.call('PEXPIREAT', targetOrder, deadline)
redis.call('PEXPIREAT', idsKey, deadline)
return {1, copied}
