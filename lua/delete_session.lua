--[[
delete_session: remove a session and its history without archiving them.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] overflow list         lr:{b}:s:<sid>:o
KEYS[5] deadline index        lr:{b}:deadlines
KEYS[6] manual index          lr:{b}:manual
KEYS[7] the user's sessions   lr:{b}:u:<uid>:sessions
ARGV[1] session id
ARGV[2] user id read by read_meta (re-checked here)
Replies:
  {1}   deleted
  {0}   nothing to delete (already archived or deleted, or the meta names another user)
]]
local metaKey = KEYS[2]
local sid, userId = ARGV[1], ARGV[2]
if redis.call('HGET', metaKey, 'user') ~= userId then return {0} end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], metaKey)
redis.call('ZREM', KEYS[5], sid)
redis.call('ZREM', KEYS[6], sid)
redis.call('ZREM', KEYS[7], sid)
return {1}
