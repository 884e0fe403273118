#!lua flags=allow-oom
--[[
lg_store_get: read items of one user's LangGraph store by field (LuminoraStore.get,
and the refresh of the items a search returned): an item past its TTL is dropped
and read as missing; with ARGV[1] "1" each item read that has a TTL gets a new
expiry, now + its TTL (LangGraph's refresh on read).

allow-oom: a read must keep working when Redis is over maxmemory; what this
script writes only removes entries or moves the score of an existing member,
so it never grows memory.

KEYS[1] items     lr:{b}:u:<uid>:lg:i   HASH field -> "<created ms> <updated ms> <JSON>"
KEYS[2] index     lr:{b}:u:<uid>:lg:x   ZSET field, score 0
KEYS[3] spaces    lr:{b}:u:<uid>:lg:n   ZSET namespace member, score 0
KEYS[4] expiries  lr:{b}:u:<uid>:lg:e   ZSET field -> expiry ms
KEYS[5] ttls      lr:{b}:u:<uid>:lg:t   HASH field -> TTL ms
ARGV[1] "1": refresh the TTL of each item read; "0": do not
ARGV[2..] fields (at most a search's limit)
Replies:
  {record, expiry_ms, record, expiry_ms, ...}   one pair per field, in order; record
                                                false (nil) when there is no live
                                                item, expiry false when it has no TTL
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

local reply = {}
for i = 2, #ARGV do
  local field = ARGV[i]
  local record = redis.call('HGET', items, field)
  local expiry = redis.call('ZSCORE', expiries, field)
  if record and expiry and tonumber(expiry) <= now then
    drop(field)
    record, expiry = false, false
  elseif record and expiry and ARGV[1] == '1' then
    local ttl = redis.call('HGET', ttls, field)
    if ttl then
      expiry = string.format('%d', now + tonumber(ttl))
      redis.call('ZADD', expiries, 'XX', expiry, field)
    end
  end
  reply[#reply + 1] = record
  reply[#reply + 1] = expiry
end
return reply
