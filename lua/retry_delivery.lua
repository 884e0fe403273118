#!lua
--[[
retry_delivery: the sink failed; try again after a delay, or quarantine the
delivery into the dead letters once it has had its maximum attempts (its body
stays, so it can be listed).

KEYS[1] outbox ZSET        lr:{b}:outbox
KEYS[2] outbox bodies      lr:{b}:outbox:d
KEYS[3] dead deliveries    lr:{b}:outbox:dead   sid -> ms quarantined
ARGV[1] delivery id (the session id)
ARGV[2] delay before the next attempt, ms (>= 0)
ARGV[3] maximum attempts, a count (0: retry forever)
ARGV[4] optional: the end of the caller's own claim that it lets go unused (claimed_until
        of archive_session, ms): when the score is still exactly that, the attempt never
        began: the count goes back down by one, and it is never quarantined for it; when
        the score is not that, the claim is not the caller's anymore: {0}, nothing written
Replies:
  {1, attempts}   rescheduled
  {3, attempts}   quarantined
  {0}             gone (acknowledged by another listener meanwhile); nothing written
]]
local outboxKey, bodiesKey, deadKey, sid = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local raw = redis.call('HGET', bodiesKey, sid)
if not raw or not redis.call('ZSCORE', outboxKey, sid) then return {0} end
local body = cmsgpack.unpack(raw)
local attempts = tonumber(body.attempts) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local most = tonumber(ARGV[3])
local own = tonumber(ARGV[4] or '0') or 0
if own > 0 then
  if tonumber(redis.call('ZSCORE', outboxKey, sid)) ~= own then return {0} end
  attempts = math.max(0, attempts - 1)
  body.attempts = attempts
  redis.call('HSET', bodiesKey, sid, cmsgpack.pack(body))
elseif most > 0 and attempts >= most then
  redis.call('ZREM', outboxKey, sid)
  redis.call('ZADD', deadKey, now, sid)
  return {3, attempts}
end
redis.call('ZADD', outboxKey, now + tonumber(ARGV[2]), sid)
return {1, attempts}
