#!lua
--[[
claim_delivery: take the lease on one due delivery of the outbox. The score
moves to now + lease and the attempt count goes up, atomically, so of several
listeners that found it due exactly one gets it; if that one dies, the lease
lapses and the delivery is due again for anyone. A body that cannot be read
is quarantined at once: no later attempt could read it either.

KEYS[1] outbox ZSET        lr:{b}:outbox        sid -> ms next attempt
KEYS[2] outbox bodies      lr:{b}:outbox:d      sid -> msgpack delivery
KEYS[3] dead deliveries    lr:{b}:outbox:dead   sid -> ms quarantined
ARGV[1] delivery id (the session id)
ARGV[2] lease, ms (> 0)
ARGV[3] optional: the end of the caller's own claim (claimed_until of archive_session,
        ms): while the score is still exactly that, the claim is the caller's and is
        extended to now + lease, no attempt counted; otherwise as without it
Replies:
  {1, body}   claimed; body is the msgpack delivery with attempts counted
  {0}         not due (someone else holds it, or it was delivered); nothing written
  {3}         its body is unreadable: quarantined, body kept
]]
local outboxKey, bodiesKey, deadKey, sid = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = tonumber(redis.call('ZSCORE', outboxKey, sid))
local own = tonumber(ARGV[3] or '0') or 0
local mine = score ~= nil and own > 0 and score == own
if not score or (score > now and not mine) then return {0} end
local raw = redis.call('HGET', bodiesKey, sid)
if not raw then
  redis.call('ZREM', outboxKey, sid)
  return {0}
end
local readable, body = pcall(cmsgpack.unpack, raw)
if not readable or type(body) ~= 'table' then
  redis.call('ZREM', outboxKey, sid)
  redis.call('ZADD', deadKey, now, sid)
  return {3}
end
if not mine then
  body.attempts = (tonumber(body.attempts) or 0) + 1
  raw = cmsgpack.pack(body)
  redis.call('HSET', bodiesKey, sid, raw)
end
redis.call('ZADD', outboxKey, now + tonumber(ARGV[2]), sid)
return {1, raw}
