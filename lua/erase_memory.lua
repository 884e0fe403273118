#!lua
--[[
erase_memory: the last step of erasing a user: the user hash and the user's
memory (affinity, facts, episodes, evolution, the LuminoraCore adapter's records
beside them), once no session and no archived conversation of the user is left.
UNLINK frees large collections off Redis's main thread, so this call stays short
for a heavy user.

KEYS[1] the user's sessions     lr:{b}:u:<uid>:sessions
KEYS[2] the user's archive ZSET lr:{b}:u:<uid>:archive
KEYS[3] user hash               lr:{b}:u:<uid>
KEYS[4] affinity hash           lr:{b}:u:<uid>:affinity
KEYS[5] facts hash              lr:{b}:u:<uid>:facts
KEYS[6] episodes ZSET           lr:{b}:u:<uid>:episodes
KEYS[7] episode bodies hash     lr:{b}:u:<uid>:episodes:b
KEYS[8] evolution ZSET          lr:{b}:u:<uid>:evolution
KEYS[9] LuminoraCore affinity records  lr:{b}:u:<uid>:lc:a
KEYS[10] LuminoraCore fact records     lr:{b}:u:<uid>:lc:f
KEYS[11] LuminoraCore episode records  lr:{b}:u:<uid>:lc:e
ARGV    none
Replies:
  {1, removed_keys}   erased
  {0, sessions, archived}   sessions or archived conversations appeared meanwhile;
                            nothing written: erase them first, then call again
]]
local sessions = redis.call('ZCARD', KEYS[1])
local archived = redis.call('ZCARD', KEYS[2])
if sessions > 0 or archived > 0 then return {0, sessions, archived} end
return {1, redis.call('UNLINK', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
                       KEYS[10], KEYS[11])}
