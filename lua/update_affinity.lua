--[[
update_affinity: add points to a user's affinity with a personality, never
going below 0, and log the change in the user's evolution, atomically.

KEYS[1] affinity hash         lr:{b}:u:<uid>:affinity   (personality -> points)
KEYS[2] evolution ZSET        lr:{b}:u:<uid>:evolution  (record, scored by sequence number)
KEYS[3] user hash             lr:{b}:u:<uid>            (evolution sequence counter)
ARGV[1] personality name
ARGV[2] points delta, integer (may be negative)
ARGV[3] evolution record: msgpack array lacking its last four elements,
        which this script appends: points, level, sequence number, timestamp (ms)
ARGV[4..] affinity levels as pairs (name, minimum points), ascending by minimum
Replies:
  {1, points, level, now_ms}
]]
local affinityKey, evolutionKey, userKey = KEYS[1], KEYS[2], KEYS[3]
local personality = ARGV[1]

local points = redis.call('HINCRBY', affinityKey, personality, ARGV[2])
if points < 0 then
  redis.call('HSET', affinityKey, personality, 0)
  points = 0
end
local level = ARGV[4]
for i = 4, #ARGV - 1, 2 do
  if points >= tonumber(ARGV[i + 1]) then level = ARGV[i] end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', userKey, 'evolution_seq', 1)
redis.call('ZADD', evolutionKey, seq,
           ARGV[3] .. cmsgpack.pack(points) .. cmsgpack.pack(level) .. cmsgpack.pack(seq)
                   .. cmsgpack.pack(now))
return {1, points, level, now}
