#!lua flags=no-writes
--[[
due_sessions: members of one bucket's ZSET whose score has passed on the server
clock, and the next score still ahead. The sweeper and get_expired_sessions
call this per bucket on the deadline indexes, the delivery loop on the outbox;
the next score lets them wake when the bucket's first entry is due instead of
asking every bucket again.

Redis expires a key only when now > PEXPIREAT, so "passed" is strictly
score < now: an entry in its deadline millisecond is not due yet (the session
hash still answers), and the next score returned names that millisecond.

KEYS[1] deadline index or outbox  lr:{b}:deadlines, lr:{b}:manual or lr:{b}:outbox
ARGV[1] how many, at most (> 0)
Replies:
  {now_ms, next_ms, sid...}   earliest first; next_ms is the earliest score >= now,
                              or -1 when none is
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[1]))
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local reply = {now, tonumber(ahead[2]) or -1}
for i, sid in ipairs(due) do reply[i + 2] = sid end
return reply
