#!lua flags=no-writes
--[[
list_deadlines: the sessions of one bucket with the earliest deadlines, from
its two deadline indexes (bounded by a limit, never a keyspace scan).

KEYS[1] deadline index        lr:{b}:deadlines
KEYS[2] manual index          lr:{b}:manual
ARGV[1] only deadlines up to now + this many milliseconds (-1: any deadline)
ARGV[2] how many per index, at most (> 0)
Replies:
  {now_ms, sid, deadline_ms, auto, ...}   auto is 1 for the deadline index, 0 for manual
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local upto = '+inf'
if window >= 0 then upto = now + window end
local limit = tonumber(ARGV[2])
local reply = {now}
local function add(page, auto)
  for i = 1, #page, 2 do
    reply[#reply + 1] = page[i]
    reply[#reply + 1] = page[i + 1]
    reply[#reply + 1] = auto
  end
end
add(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', upto, 'WITHSCORES', 'LIMIT', 0, limit), 1)
add(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', upto, 'WITHSCORES', 'LIMIT', 0, limit), 0)
return reply
