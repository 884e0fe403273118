#!lua flags=allow-oom
--[[
lg_store_scan: one page of a user's LangGraph store items in field (byte) order,
within a range of fields: a namespace prefix is one range, since every field
below a namespace starts with its bytes. Items past their TTL are dropped as
they are met and not returned. The caller filters, skips and continues from the
last field examined, so one reply never holds more than ARGV[3] items.

allow-oom: as lg_store_get, it only removes entries, so reads keep working over
maxmemory.

KEYS[1] items     lr:{b}:u:<uid>:lg:i   HASH field -> "<created ms> <updated ms> <JSON>"
KEYS[2] index     lr:{b}:u:<uid>:lg:x   ZSET field, score 0
KEYS[3] spaces    lr:{b}:u:<uid>:lg:n   ZSET namespace member, score 0
KEYS[4] expiries  lr:{b}:u:<uid>:lg:e   ZSET field -> expiry ms
KEYS[5] ttls      lr:{b}:u:<uid>:lg:t   HASH field -> TTL ms
ARGV[1] start of the range, ZRANGE BYLEX syntax: "[" .. first field, or "(" .. the last
        field of the previous page
ARGV[2] end of the range, ZRANGE BYLEX syntax ("(" .. prefix .. "\255")
ARGV[3] how many fields to examine, at most (> 0)
Replies:
  {last, field, record, expiry_ms, ...}   last: the last field examined, false (nil)
                                          when the range is exhausted; expiry false
                                          for an item without TTL
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

local page = tonumber(ARGV[3])
local fields = redis.call('ZRANGE', index, ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, page)
local reply = {#fields == page and fields[#fields] or false}
for _, field in ipairs(fields) do
  local record = redis.call('HGET', items, field)
  local expiry = redis.call('ZSCORE', expiries, field)
  if expiry and tonumber(expiry) <= now then
    drop(field)
  elseif record then
    reply[#reply + 1] = field
    reply[#reply + 1] = record
    reply[#reply + 1] = expiry or false
  end
end
return reply
