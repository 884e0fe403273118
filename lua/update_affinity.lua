#!lua
--[[
update_affinity: add points to a user's affinity with a personality, never
going below 0, and log the change in the user's evolution, atomically.

Idempotent per call, as chat_turn is per turn: each call carries a random
operation id, which the user hash keeps with the outcome (field
aff_op:<personality>: "<id> <points> <now_ms>"). When the connection breaks
after the change was written and before its reply arrived, redis-py resends the
same EVALSHA; the resend finds its own id, writes nothing and answers as the
original did. Only the last id per personality is kept: a resend follows its
original at once, from the same caller.

KEYS[1] affinity hash         lr:{b}:u:<uid>:affinity   (personality -> points)
KEYS[2] evolution ZSET        lr:{b}:u:<uid>:evolution  (record, scored by sequence number)
KEYS[3] user hash             lr:{b}:u:<uid>            (evolution sequence counter)
ARGV[1] personality name
ARGV[2] points delta, integer (may be negative)
ARGV[3] evolution record: msgpack array lacking its last four elements,
        which this script appends: points, level, sequence number, timestamp (ms)
ARGV[4] operation id: random, one per call
ARGV[5..] affinity levels as pairs (name, minimum points), ascending by minimum
Replies:
  {1, points, level, now_ms}
]]
local affinityKey, evolutionKey, userKey = KEYS[1], KEYS[2], KEYS[3]
local personality, opId = ARGV[1], ARGV[4]
local opField = 'aff_op:' .. personality

local function levelOf(points)
  local level = ARGV[5]
  for i = 5, #ARGV - 1, 2 do
    if points >= tonumber(ARGV[i + 1]) then level = ARGV[i] end
  end
  return level
end

local done = redis.call('HGET', userKey, opField)
if done then
  local id, points, now = string.match(done, '^(%S+) (%d+) (%d+)$')
  if id == opId then return {1, tonumber(points), levelOf(tonumber(points)), tonumber(now)} end
end

local points = redis.call('HINCRBY', affinityKey, personality, ARGV[2])
if points < 0 then
  redis.call('HSET', affinityKey, personality, 0)
  points = 0
end
local level = levelOf(points)

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', userKey, 'evolution_seq', 1)
redis.call('ZADD', evolutionKey, seq,
           ARGV[3] .. cmsgpack.pack(points) .. cmsgpack.pack(level) .. cmsgpack.pack(seq)
                   .. cmsgpack.pack(now))
redis.call('HSET', userKey, opField, opId .. ' ' .. points .. ' ' .. now)
return {1, points, level, now}
