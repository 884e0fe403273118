#!lua
--[[
lg_store_delete: remove one item of a user's LangGraph store (LuminoraStore.delete,
or a put of None), its namespace with its last item, and drop up to 100 of the
user's items that are past their TTL.

KEYS[1] items     lr:{b}:u:<uid>:lg:i   HASH field -> "<created ms> <updated ms> <JSON>"
KEYS[2] index     lr:{b}:u:<uid>:lg:x   ZSET field, score 0
KEYS[3] spaces    lr:{b}:u:<uid>:lg:n   ZSET namespace member, score 0
KEYS[4] expiries  lr:{b}:u:<uid>:lg:e   ZSET field -> expiry ms
KEYS[5] ttls      lr:{b}:u:<uid>:lg:t   HASH field -> TTL ms
ARGV[1] the item's field: its namespace below the user, a NUL, its key
Replies:
  1   the item was there (live) and is removed
  0   there was no live item
]]
local items, index, spaces, expiries, ttls = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function member_of(field)
  if string.byte(field, 1) == 0 then return '\0' end
  local at = string.find(field, '\0\0', 1, true)
  return string.sub(field, 1, at + 1)
end

local function drop(field)
  redis.call('HDEL', items, field)
  redis.call('ZREM', index, field)
  redis.call('ZREM', expiries, field)
  redis.call('HDEL', ttls, field)
  local member = member_of(field)
  if #redis.call('ZRANGE', index, '[' .. member, '(' .. member .. '\255', 'BYLEX', 'LIMIT', 0, 1) == 0 then
    redis.call('ZREM', spaces, member)
  end
end

for _, field in ipairs(redis.call('ZRANGEBYSCORE', expiries, '-inf', now, 'LIMIT', 0, 100)) do
  drop(field)
end

local field = ARGV[1]
if not redis.call('HGET', items, field) then return 0 end
drop(field)
return 1
