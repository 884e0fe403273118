--[[
due_sessions: sessions of one bucket whose deadline has passed on the server
clock, and the bucket's next deadline. The sweeper and get_expired_sessions
call this per bucket and index; the next deadline lets the sweeper wake when
the bucket's first session is due instead of asking every bucket again.

KEYS[1] deadline index        lr:{b}:deadlines or lr:{b}:manual
ARGV[1] how many, at most (> 0)
Replies:
  {now_ms, next_deadline_ms, sid...}   earliest deadline first; next_deadline_ms is the
                                       earliest deadline still ahead, or -1 when none is
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local reply = {now, tonumber(ahead[2]) or -1}
for i, sid in ipairs(due) do reply[i + 2] = sid end
return reply
