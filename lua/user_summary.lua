#!lua flags=no-writes
--[[
user_summary: one user's first and last visit and the size of each part of
their data, all O(1) reads.

KEYS[1] user hash               lr:{b}:u:<uid>
KEYS[2] the user's sessions     lr:{b}:u:<uid>:sessions
KEYS[3] the user's archive ZSET lr:{b}:u:<uid>:archive
KEYS[4] affinity hash           lr:{b}:u:<uid>:affinity
KEYS[5] facts hash              lr:{b}:u:<uid>:facts
KEYS[6] episodes ZSET           lr:{b}:u:<uid>:episodes
KEYS[7] evolution ZSET          lr:{b}:u:<uid>:evolution
ARGV    none
Replies:
  {first_seen_ms, last_seen_ms, sessions, archived, personalities, facts, episodes,
   evolution}   the times are false when unknown
]]
local seen = redis.call('HMGET', KEYS[1], 'first_seen', 'last_seen')
return {seen[1], seen[2], redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
        redis.call('HLEN', KEYS[4]), redis.call('HLEN', KEYS[5]), redis.call('ZCARD', KEYS[6]),
        redis.call('ZCARD', KEYS[7])}
