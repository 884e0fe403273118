#!lua flags=no-writes
--[[
bucket_stats: what one bucket's deadline indexes say, on the server clock:
sessions not yet archived, how many are overdue, how many end soon, and the
oldest overdue deadline.

KEYS[1] deadline index        lr:{b}:deadlines
KEYS[2] manual index          lr:{b}:manual
ARGV[1] the "soon" window, milliseconds
Replies:
  {now_ms, sessions, overdue, ending_soon, oldest_overdue_ms (-1 when none)}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local soon = now + tonumber(ARGV[1])
local sessions = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local overdue = redis.call('ZCOUNT', KEYS[1], '-inf', now) + redis.call('ZCOUNT', KEYS[2], '-inf', now)
local ending = redis.call('ZCOUNT', KEYS[1], '(' .. now, soon)
               + redis.call('ZCOUNT', KEYS[2], '(' .. now, soon)
local oldest = -1
for _, first in ipairs({redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES'),
                        redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')}) do
  local score = tonumber(first[2])
  if score and score <= now and (oldest < 0 or score < oldest) then oldest = score end
end
return {now, sessions, overdue, ending, oldest}
