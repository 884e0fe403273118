#!lua
--[[
create_session: store a new session that Redis expires by itself, and index it.

The session hash expires at min(now + max_idle, now + ttl) on the server clock.
The meta hash keeps what archiving needs once the session hash is gone, the last
activity included (chat_turn moves it), and tk = 1: every message of the session
carries its token count (chat_turn then reads counts without checking each
record's format); the history list is created by the first
message. The deadline index gets the first deadline, a lower bound of every later
one, and so does the bucket's due-bucket hint when it is declared (the sweeper
reads only buckets whose hint has passed; see lower_hints.lua). No user key gets a TTL.

Idempotent per call: each call carries a random creation nonce, kept in the
meta hash (and copied into the archived record by archive_session). When the
connection breaks after the session was created and before the reply arrived,
redis-py resends the same EVALSHA; the resend finds the id taken by its own
nonce, live or already archived, writes nothing and answers {2}, so the caller
gets the id that was created instead of drawing another one.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m
KEYS[3] deadline index        lr:{b}:deadlines (auto_cleanup) or lr:{b}:manual
KEYS[4] the user's sessions   lr:{b}:u:<uid>:sessions
KEYS[5] user hash             lr:{b}:u:<uid>
KEYS[6] archived record hash  lr:{b}:u:<uid>:a:<sid>   (read only)
KEYS[7] due-bucket hint       lr:{h<g>}:due   optional: given on a single server, where it
                                              may be declared with the others, for an
                                              auto_cleanup session (on a cluster the
                                              caller lowers it with lower_hints.lua)
ARGV[1] session id
ARGV[2] user id, as the caller gave it
ARGV[3] personality name
ARGV[4] ttl, milliseconds (> 0)
ARGV[5] max idle, milliseconds (> 0)
ARGV[6] auto cleanup: "1" or "0"
ARGV[7] creation nonce, random, one per call
ARGV[8] with KEYS[7]: the session's bucket, its member in the hint key
Replies:
  {1, now_ms, absolute_deadline_ms, effective_deadline_ms}   created
  {2}    created by an earlier send of this call (same nonce); nothing written
  {-3}   the id is taken by another call; nothing written
]]
local sessionKey, metaKey, indexKey = KEYS[1], KEYS[2], KEYS[3]
local userSessionsKey, userKey = KEYS[4], KEYS[5]
local sid, userId, personality = ARGV[1], ARGV[2], ARGV[3]
local ttl, idle, auto, nonce = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]

if redis.call('EXISTS', sessionKey, metaKey) > 0 then
  if redis.call('HGET', metaKey, 'nonce') == nonce then return {2} end
  return {-3}
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  if redis.call('HGET', KEYS[6], 'nonce') == nonce then return {2} end
  return {-3}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local absolute = now + ttl
local deadline = math.min(now + idle, absolute)

redis.call('HSET', sessionKey, 'user', userId, 'pers', personality, 'created', now,
           'abs', absolute, 'idle', idle, 'auto', auto)
redis.call('PEXPIREAT', sessionKey, deadline)
redis.call('HSET', metaKey, 'user', userId, 'pers', personality, 'created', now,
           'abs', absolute, 'idle', idle, 'last', now, 'auto', auto, 'nonce', nonce, 'tk', 1)
redis.call('ZADD', indexKey, deadline, sid)
if KEYS[7] then redis.call('ZADD', KEYS[7], 'LT', deadline, ARGV[8]) end
redis.call('ZADD', userSessionsKey, now, sid)
redis.call('HSETNX', userKey, 'first_seen', now)
redis.call('HSET', userKey, 'last_seen', now)
return {1, now, absolute, deadline}
