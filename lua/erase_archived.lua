#!lua
--[[
erase_archived: erase some of one user's archived conversations, each with its
record, its message lists and segments, its archive entry, and any pending,
retried or quarantined delivery of it (the delivery id is the session id).

KEYS[1] the user's archive ZSET lr:{b}:u:<uid>:archive
KEYS[2] sweep failures hash     lr:{b}:failures
KEYS[3] sweep quarantine ZSET   lr:{b}:quarantine
KEYS[4] outbox ZSET             lr:{b}:outbox
KEYS[5] outbox bodies hash      lr:{b}:outbox:d
KEYS[6] outbox dead ZSET        lr:{b}:outbox:dead
KEYS[7..] per conversation, in ARGV order: record hash, archived history, archived
          overflow, then its n segments (lr:{b}:u:<uid>:a:<sid>:g:1..n)
ARGV[1..] per conversation: session id, n (how many segments the caller declared)
Replies:
  {removed_keys, sid, segs, ...}   removed_keys: keys deleted by this call (index keys it
                                   emptied included); every sid
                                   listed after it was left untouched because its record
                                   counts segs segments, more than declared
]]
local archiveKey, failuresKey, quarantineKey = KEYS[1], KEYS[2], KEYS[3]
local outboxKey, outboxBodiesKey, deadKey = KEYS[4], KEYS[5], KEYS[6]
-- index keys emptied by this call are removed keys too
local removed = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
local retry = {}
local k = 7
for i = 1, #ARGV, 2 do
  local sid, declared = ARGV[i], tonumber(ARGV[i + 1])
  local segs = tonumber(redis.call('HGET', KEYS[k], 'segs') or '0')
  if segs > declared then
    retry[#retry + 1] = sid
    retry[#retry + 1] = segs
  else
    removed = removed + redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
    for j = 1, declared do
      removed = removed + redis.call('DEL', KEYS[k + 2 + j])
    end
    redis.call('ZREM', archiveKey, sid)
    redis.call('HDEL', failuresKey, sid)
    redis.call('ZREM', quarantineKey, sid)
    redis.call('ZREM', outboxKey, sid)
    redis.call('HDEL', outboxBodiesKey, sid)
    redis.call('ZREM', deadKey, sid)
  end
  k = k + 3 + declared
end
removed = removed - redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
local reply = {removed}
for _, item in ipairs(retry) do reply[#reply + 1] = item end
return reply
