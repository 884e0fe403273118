#!lua
--[[
trim_archive: keep only a user's newest N archived conversations, never one
whose delivery to the on_archived sink is pending or quarantined.

Called first with no victims to learn which records lie beyond the limit,
then with those records' keys declared; records are re-checked before they
are deleted, so a concurrent archive, trim or delivery is harmless. Victims
are the records beyond the limit that no delivery waits for, among the
oldest 100 (a bounded reply): a pending one stays, over the limit, until its
delivery is acknowledged and the listener trims again.

KEYS[1]      the user's archive ZSET           lr:{b}:u:<uid>:archive
KEYS[2]      the bucket's outbox ZSET          lr:{b}:outbox
KEYS[3]      the bucket's dead deliveries      lr:{b}:outbox:dead
KEYS[4+3i..] per victim: record hash, archived history, archived overflow
ARGV[1]      how many conversations to keep (>= 0)
ARGV[2..]    victim session ids, in the order of their key triples
Replies:
  {sid...}   records still to trim (empty when done)
]]
local archiveKey, outboxKey, deadKey = KEYS[1], KEYS[2], KEYS[3]
local keep = tonumber(ARGV[1])
local WINDOW = 100

local function pending(sid)
  return redis.call('ZSCORE', outboxKey, sid) or redis.call('ZSCORE', deadKey, sid)
end

for i = 2, #ARGV do
  local sid = ARGV[i]
  local rank = redis.call('ZRANK', archiveKey, sid)
  if rank and rank < redis.call('ZCARD', archiveKey) - keep and not pending(sid) then
    local k = 4 + 3 * (i - 2)
    redis.call('ZREM', archiveKey, sid)
    redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
  end
end
local excess = redis.call('ZCARD', archiveKey) - keep
if excess <= 0 then return {} end
local victims = {}
for _, sid in ipairs(redis.call('ZRANGE', archiveKey, 0, math.min(excess, WINDOW) - 1)) do
  if not pending(sid) then victims[#victims + 1] = sid end
end
return victims
