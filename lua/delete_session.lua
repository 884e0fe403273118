#!lua
--[[
delete_session: remove a session, its history, its running summary and its segments
without archiving them.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] overflow list         lr:{b}:s:<sid>:o
KEYS[5] deadline index        lr:{b}:deadlines
KEYS[6] manual index          lr:{b}:manual
KEYS[7] the user's sessions   lr:{b}:u:<uid>:sessions
KEYS[8] running summary hash  lr:{b}:s:<sid>:sum
KEYS[9..] segments 1..segs    lr:{b}:u:<uid>:a:<sid>:g:<n>   (segs as read by read_segments)
ARGV[1] session id
ARGV[2] user id read by read_segments (re-checked here)
ARGV[3] segment count (integer) read by read_segments (re-checked here)
Replies:
  {1}        deleted (the lists are UNLINKed: freed off the main thread)
  {0}        nothing to delete (already archived or deleted, or the meta names another user)
  {-4, segs} the segment count changed since it was read; read it again
]]
local metaKey = KEYS[2]
local sid, userId, segs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local meta = redis.call('HMGET', metaKey, 'user', 'segs')
if meta[1] ~= userId then return {0} end
local actual = tonumber(meta[2]) or 0
if actual ~= segs then return {-4, actual} end
redis.call('DEL', KEYS[1], metaKey, KEYS[8])
redis.call('UNLINK', KEYS[3], KEYS[4])
for i = 9, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('ZREM', KEYS[5], sid)
redis.call('ZREM', KEYS[6], sid)
redis.call('ZREM', KEYS[7], sid)
return {1}
