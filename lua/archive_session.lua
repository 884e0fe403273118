#!lua
--[[
archive_session: move a session's conversation into its user's archive,
exactly once. Idempotent: when several listeners, a sweeper and a cleanup race
for one session, one call archives and every other one returns {0}.

The history and overflow lists are RENAMEd (O(1)) under the user's archive;
a record hash holds the metadata; the archive ZSET orders records by end time,
and conversations that ended in the same millisecond by the order they were
archived in: score = ended_ms * 1000 + (the user's archive counter mod 1000).
The session leaves every index, and its meta hash is deleted last. In the
same atomic step the delivery to the on_archived sink is recorded in the
bucket's outbox (due now), so it survives any crash of whoever archived
(unless the store was told that no sink takes deliveries).
The session's segments (lr:{b}:u:<uid>:a:<sid>:g:<n>) are in the archive area
already; the record copies their count (segs), and message_count includes them.
It also copies the creation nonce, so that a resent create_session still
recognises its session once archived, and the session's mood (from the meta
hash, where save_mood keeps a copy; from the session hash for a session whose
mood was saved before that copy existed), when it has one, and its running
summary (set_summary), when it has one: the summarized messages are archived
with the rest, nothing dropped. The drop-in adapters' caller-chosen ids the meta
hash names (lcid: a LuminoraCore session id, lgid: a LangGraph thread id) are
copied too, so that erase_user and export_user find their alias records once the
meta hash is gone.

An index score is a lower bound of the effective deadline (chat turns slide
the deadline without touching the index). A session found still live in
expire or cleanup mode has its entry raised to the hash's real expiry, so
whoever found it due does not find it again until it really is. An expired
session ends exactly at min(last + idle, abs), from the meta hash, where
chat_turn records every activity; a session last written by an older version
(no last/idle in its meta hash) ends at its index score, which that version
kept exact.

KEYS[1]  session hash             lr:{b}:s:<sid>
KEYS[2]  session meta hash        lr:{b}:s:<sid>:m   (last activity and idle included)
KEYS[3]  history list             lr:{b}:s:<sid>:h
KEYS[4]  overflow list            lr:{b}:s:<sid>:o
KEYS[5]  deadline index           lr:{b}:deadlines
KEYS[6]  manual index             lr:{b}:manual
KEYS[7]  the user's sessions      lr:{b}:u:<uid>:sessions
KEYS[8]  the user's archive ZSET  lr:{b}:u:<uid>:archive
KEYS[9]  archived record hash     lr:{b}:u:<uid>:a:<sid>
KEYS[10] archived history list    lr:{b}:u:<uid>:a:<sid>:h
KEYS[11] archived overflow list   lr:{b}:u:<uid>:a:<sid>:o
KEYS[12] user hash                lr:{b}:u:<uid>            (archive counter)
KEYS[13] outbox ZSET              lr:{b}:outbox             sid -> ms next attempt
KEYS[14] outbox bodies            lr:{b}:outbox:d           sid -> msgpack delivery
KEYS[15] sweep failure counts     lr:{b}:failures           (cleared on archive)
KEYS[16] running summary hash     lr:{b}:s:<sid>:sum        (its record moves into the
                                                            archived record, field summary)
ARGV[1] session id
ARGV[2] user id read by read_meta (re-checked here)
ARGV[3] mode: "expire"  archive if expired and auto_cleanup is on (listener, sweeper)
              "cleanup" archive if expired, whatever auto_cleanup says
              "end"     end a live session now (logout), or archive an expired one
ARGV[4] record the delivery to the on_archived sink: "1" yes, "0" no
ARGV[5] optional: return the archived conversation when it holds at most this many
        messages, all in the archived overflow and history (no segment); 0 or absent: never
ARGV[6] optional: a lease, ms: the caller delivers the conversation itself, now: the
        delivery is recorded claimed by it, as claim_delivery leaves one (attempt 1,
        due again once the lease lapses); 0 or absent: due now, for any listener
Replies:
  {1, ended_ms, reason, message_count, archive_size, claimed_until}
         archived by this call; reason is idle, absolute or ended; claimed_until: the
         score of the delivery the caller claimed (ARGV[6]), its lease's end (ms, server
         clock; the caller's token for claim_delivery and retry_delivery), else 0
  {1, ended_ms, reason, message_count, archive_size, claimed_until, record, {message...}}
         the same, with the conversation (ARGV[5]): record as read_archived replies it,
         {pers, created_ms, ended_ms, reason, count, segs, zstd, mood, summary}, and
         the messages, overflow first, as stored
  {0}    nothing to do: already archived or deleted (or the meta names another user)
  {-2}   the session is still live (expire and cleanup modes); nothing written but its
         index entry, raised to its real expiry
  {-5}   auto_cleanup is off: left for cleanup (expire mode); nothing written
]]
local sessionKey, metaKey, historyKey, overflowKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local deadlinesKey, manualKey, userSessionsKey, archiveKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local recordKey, archivedHistoryKey, archivedOverflowKey = KEYS[9], KEYS[10], KEYS[11]
local sid, userId, mode, deliver = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local returned = tonumber(ARGV[5] or '0') or 0
local lease = tonumber(ARGV[6] or '0') or 0

local meta = redis.call('HMGET', metaKey, 'user', 'pers', 'created', 'abs', 'auto', 'segs', 'base',
                        'nonce', 'last', 'idle', 'lcid', 'lgid')
if meta[1] ~= userId then return {0} end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('EXISTS', sessionKey) == 1
-- The mood the session ends with (read before the session hash is deleted).
local mood = redis.call('HGET', metaKey, 'mood') or redis.call('HGET', sessionKey, 'mood')
local ended, reason
if live then
  if mode ~= 'end' then
    local deadline = redis.pcall('PEXPIRETIME', sessionKey)
    if type(deadline) ~= 'number' or deadline < 0 then
      -- Redis 6.2 lacks PEXPIRETIME, or the hash lost its TTL: the deadline the meta
      -- hash records.
      deadline = math.min((tonumber(meta[9]) or 0) + (tonumber(meta[10]) or 0),
                          tonumber(meta[4]) or 0)
    end
    redis.call('ZADD', deadlinesKey, 'XX', 'GT', deadline, sid)
    redis.call('ZADD', manualKey, 'XX', 'GT', deadline, sid)
    return {-2}
  end
  redis.call('DEL', sessionKey)
  ended, reason = now, 'ended'
else
  if mode == 'expire' and meta[5] ~= '1' then return {-5} end
  local absolute = tonumber(meta[4])
  local deadline
  if meta[9] and meta[10] then
    deadline = math.min(tonumber(meta[9]) + tonumber(meta[10]), absolute)
  else
    -- A session last written before the meta hash kept its activity: its index
    -- score was then kept exact.
    deadline = tonumber(redis.call('ZSCORE', deadlinesKey, sid)
                        or redis.call('ZSCORE', manualKey, sid)) or math.min(now, absolute)
  end
  ended = deadline
  if deadline >= absolute then reason = 'absolute' else reason = 'idle' end
end

local count = redis.call('LLEN', historyKey) + redis.call('LLEN', overflowKey)
  + (tonumber(meta[7]) or 0)
if redis.call('EXISTS', historyKey) == 1 then
  redis.call('RENAME', historyKey, archivedHistoryKey)
end
if redis.call('EXISTS', overflowKey) == 1 then
  redis.call('RENAME', overflowKey, archivedOverflowKey)
end
redis.call('HSET', recordKey, 'pers', meta[2], 'created', meta[3], 'ended', ended,
           'reason', reason, 'count', count, 'segs', tonumber(meta[6]) or 0,
           'nonce', meta[8] or '')
if mood then redis.call('HSET', recordKey, 'mood', mood) end
if meta[11] then redis.call('HSET', recordKey, 'lcid', meta[11]) end
if meta[12] then redis.call('HSET', recordKey, 'lgid', meta[12]) end
local summary = redis.call('HGET', KEYS[16], 'rec')
if summary then
  redis.call('HSET', recordKey, 'summary', summary)
  redis.call('DEL', KEYS[16])
end
local seq = redis.call('HINCRBY', KEYS[12], 'archive_seq', 1)
redis.call('ZADD', archiveKey, ended * 1000 + seq % 1000, sid)
redis.call('ZREM', deadlinesKey, sid)
redis.call('ZREM', manualKey, sid)
redis.call('ZREM', userSessionsKey, sid)
redis.call('DEL', metaKey)
redis.call('HDEL', KEYS[15], sid)
local claimedUntil = 0
if deliver then
  local claimed = lease > 0 and 1 or 0
  redis.call('HSET', KEYS[14], sid, cmsgpack.pack({sid = sid, user = userId, attempts = claimed,
                                                   created = now, ended = ended, reason = reason}))
  redis.call('ZADD', KEYS[13], now + math.max(lease, 0), sid)
  if lease > 0 then claimedUntil = now + lease end
end
local size = redis.call('ZCARD', archiveKey)
if returned <= 0 or count > returned or (tonumber(meta[6]) or 0) > 0 then
  return {1, ended, reason, count, size, claimedUntil}
end
-- The caller hands the conversation on (the listener's sink, its compression): the
-- lists it now has are read here rather than in a round trip of their own.
local messages = redis.call('LRANGE', archivedOverflowKey, 0, -1)
for _, message in ipairs(redis.call('LRANGE', archivedHistoryKey, 0, -1)) do
  messages[#messages + 1] = message
end
local record = {meta[2], meta[3], tostring(ended), reason, tostring(count), '0', '0',
                mood or false, summary or false}
return {1, ended, reason, count, size, claimedUntil, record, messages}
