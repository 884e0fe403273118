#!lua flags=allow-oom
--[[
lg_store_namespaces: one page of a user's LangGraph store namespaces in byte order,
within a range (a namespace prefix). Up to 100 of the user's items past their
TTL are dropped first, with their namespace once its last item is gone, so a
namespace whose items have all expired stops being listed. The caller matches
suffixes and wildcards, cuts to max_depth and continues from the last member.

allow-oom: as lg_store_get, it only removes entries, so reads keep working over
maxmemory.

KEYS[1] items     lr:{b}:u:<uid>:lg:i   HASH field -> "<created ms> <updated ms> <JSON>"
KEYS[2] index     lr:{b}:u:<uid>:lg:x   ZSET field, score 0
KEYS[3] spaces    lr:{b}:u:<uid>:lg:n   ZSET namespace member, score 0
KEYS[4] expiries  lr:{b}:u:<uid>:lg:e   ZSET field -> expiry ms
KEYS[5] ttls      lr:{b}:u:<uid>:lg:t   HASH field -> TTL ms
ARGV[1] start of the range, ZRANGE BYLEX syntax ("[" .. prefix, or "(" .. last member)
ARGV[2] end of the range, ZRANGE BYLEX syntax ("(" .. prefix .. "\255")
ARGV[3] how many members to list, at most (> 0)
Replies:
  {more, member, ...}   more: 1 when the range may hold further members
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

local page = tonumber(ARGV[3])
local members = redis.call('ZRANGE', spaces, ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, page)
local reply = {#members == page and 1 or 0}
for _, member in ipairs(members) do reply[#reply + 1] = member end
return reply
