--[[
due_sessions: sessions of one bucket whose deadline has passed on the server
clock. The sweeper and get_expired_sessions call this once per bucket and index.

KEYS[1] deadline index        lr:{b}:deadlines or lr:{b}:manual
ARGV[1] how many, at most (> 0)
Replies:
  {now_ms, sid...}   earliest deadline first
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local reply = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
table.insert(reply, 1, now)
return reply
