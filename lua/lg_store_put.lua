#!lua
--[[
lg_store_put: write one item of a user's LangGraph store (LuminoraStore.put), with
its TTL or none, and drop up to 100 of the user's items that are past their TTL.

A field is the item's namespace below the user and its key; its namespace
member is the field up to and including the first double NUL (see
luminora_redis/ops/store_items.py). created is kept across overwrites of a live
item; an item past its TTL is gone first, so a put after expiry creates anew.

KEYS[1] items     lr:{b}:u:<uid>:lg:i   HASH field -> "<created ms> <updated ms> <JSON>"
KEYS[2] index     lr:{b}:u:<uid>:lg:x   ZSET field, score 0
KEYS[3] spaces    lr:{b}:u:<uid>:lg:n   ZSET namespace member, score 0
KEYS[4] expiries  lr:{b}:u:<uid>:lg:e   ZSET field -> expiry ms
KEYS[5] ttls      lr:{b}:u:<uid>:lg:t   HASH field -> TTL ms
ARGV[1] the item's field: its namespace below the user, a NUL, its key
ARGV[2] the namespace member of that field
ARGV[3] the value, a JSON object
ARGV[4] TTL in ms (> 0), or "" for an item that never expires
Replies:
  {created_ms, updated_ms}
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
local created = now
local old = redis.call('HGET', items, field)
if old then created = tonumber(string.match(old, '^(%d+) ')) end
redis.call('HSET', items, field, string.format('%d %d ', created, now) .. ARGV[3])
redis.call('ZADD', index, 0, field)
redis.call('ZADD', spaces, 0, ARGV[2])
if ARGV[4] == '' then
  redis.call('ZREM', expiries, field)
  redis.call('HDEL', ttls, field)
else
  redis.call('ZADD', expiries, string.format('%d', now + tonumber(ARGV[4])), field)
  redis.call('HSET', ttls, field, ARGV[4])
end
return {created, now}
