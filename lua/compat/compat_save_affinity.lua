#!lua
--[[
compat_save_affinity: set a user's affinity with a personality to an absolute
number of points (LuminoraCore's save_affinity), keep the caller's record
beside it, and log the change in the user's evolution, atomically.

KEYS[1] affinity hash         lr:{b}:u:<uid>:affinity   (personality -> points)
KEYS[2] evolution ZSET        lr:{b}:u:<uid>:evolution  (record, scored by sequence number)
KEYS[3] user hash             lr:{b}:u:<uid>            (evolution sequence counter)
KEYS[4] affinity records      lr:{b}:u:<uid>:lc:a       (personality -> caller's record)
ARGV[1] personality name
ARGV[2] points, integer >= 0
ARGV[3] evolution record: msgpack array of 8 holding kind and personality; this script
        appends the delta, ARGV[4], the points, ARGV[5], the sequence number and the time (ms)
ARGV[4] msgpack interaction type (nil)
ARGV[5] level name, as the caller computed it
ARGV[6] caller's record: msgpack array of 2 lacking its last element, the time (ms)
Replies:
  {1, now_ms}
]]
local affinityKey, evolutionKey, userKey, recordKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local personality, points = ARGV[1], tonumber(ARGV[2])

local old = tonumber(redis.call('HGET', affinityKey, personality) or '0')
redis.call('HSET', affinityKey, personality, points)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', userKey, 'evolution_seq', 1)
redis.call('ZADD', evolutionKey, seq,
           ARGV[3] .. cmsgpack.pack(points - old) .. ARGV[4] .. cmsgpack.pack(points)
                   .. cmsgpack.pack(ARGV[5]) .. cmsgpack.pack(seq) .. cmsgpack.pack(now))
redis.call('HSET', recordKey, personality, ARGV[6] .. cmsgpack.pack(now))
return {1, now}
