#!lua
--[[
save_episode: remember an episode of a user's story, ranked by importance (or replace
the episode of the same id, as a session's summary is when it is saved again).

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes     (episode id, scored by importance)
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b   (episode id -> episode)
KEYS[3] optional: archive ZSET lr:{b}:u:<uid>:archive    (a session's summary is saved only
                              while its conversation is archived, so one erased meanwhile
                              is not summarized back into the user's memory)
ARGV[1] episode id
ARGV[2] importance (0 to 10)
ARGV[3] episode: msgpack array lacking its last element, the timestamp (ms); its
        element before that is the token count, a msgpack uint32 (0xce + 4 bytes)
ARGV[4] with KEYS[3]: the session id the summary belongs to
Replies:
  {1, now_ms}
  {0}          KEYS[3] given and the session is not in it: nothing written
]]
if KEYS[3] and not redis.call('ZSCORE', KEYS[3], ARGV[4]) then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. cmsgpack.pack(now))
return {1, now}
