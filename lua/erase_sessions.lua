#!lua
--[[
erase_sessions: erase some of one user's sessions (live, or expired and not yet
archived) with everything they own, each in one atomic step with its session
hash and meta hash: a chat_turn racing the erase runs before it (and its
messages are erased) or after it (and finds no session). The meta hash goes
too, so no listener or sweeper can archive the session afterwards.

KEYS[1] the user's sessions     lr:{b}:u:<uid>:sessions
KEYS[2] deadline index          lr:{b}:deadlines
KEYS[3] manual index            lr:{b}:manual
KEYS[4] sweep failures hash     lr:{b}:failures
KEYS[5] sweep quarantine ZSET   lr:{b}:quarantine
KEYS[6] outbox ZSET             lr:{b}:outbox
KEYS[7] outbox bodies hash      lr:{b}:outbox:d
KEYS[8] outbox dead ZSET        lr:{b}:outbox:dead
KEYS[9..] per session, in ARGV order: session hash, meta hash, history list, overflow
          list, running summary hash, then its n archived segments
          (lr:{b}:u:<uid>:a:<sid>:g:1..n)
ARGV[1] user id (a meta hash naming another user is never touched)
ARGV[2..] per session: session id, n (how many segments the caller declared; -1: the id
          is not a session of this user's bucket, declares no keys, and only leaves
          the user's sessions ZSET)
Replies:
  {removed_keys, sid, segs, ...}   removed_keys: keys deleted by this call (index keys it
                                   emptied included); every sid
                                   listed after it was left untouched because its meta
                                   hash counts segs segments, more than declared
]]
local sessionsKey, deadlinesKey, manualKey = KEYS[1], KEYS[2], KEYS[3]
local failuresKey, quarantineKey = KEYS[4], KEYS[5]
local outboxKey, outboxBodiesKey, deadKey = KEYS[6], KEYS[7], KEYS[8]
local userId = ARGV[1]
-- index keys emptied by this call are removed keys too
local removed = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
local retry = {}
local k = 9
for i = 2, #ARGV, 2 do
  local sid, declared = ARGV[i], tonumber(ARGV[i + 1])
  local owner, segs = false, 0
  if declared >= 0 then
    owner = redis.call('HGET', KEYS[k + 1], 'user')
    segs = tonumber(redis.call('HGET', KEYS[k + 1], 'segs') or '0')
  end
  if declared < 0 or (owner and owner ~= userId) then
    redis.call('ZREM', sessionsKey, sid)
  elseif segs > declared then
    retry[#retry + 1] = sid
    retry[#retry + 1] = segs
  else
    removed = removed + redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3],
                                   KEYS[k + 4])
    for j = 1, declared do
      removed = removed + redis.call('DEL', KEYS[k + 4 + j])
    end
    redis.call('ZREM', sessionsKey, sid)
    redis.call('ZREM', deadlinesKey, sid)
    redis.call('ZREM', manualKey, sid)
    redis.call('HDEL', failuresKey, sid)
    redis.call('ZREM', quarantineKey, sid)
    redis.call('ZREM', outboxKey, sid)
    redis.call('HDEL', outboxBodiesKey, sid)
    redis.call('ZREM', deadKey, sid)
  end
  if declared > 0 then k = k + 5 + declared elseif declared == 0 then k = k + 5 end
end
removed = removed - redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
local reply = {removed}
for _, item in ipairs(retry) do reply[#reply + 1] = item end
return reply
