#!lua
--[[
trim_archive: keep only a user's newest N archived conversations.

Called first with no victims to learn which records lie beyond the limit,
then with those records' keys declared; records are re-checked before they
are deleted, so a concurrent archive or trim is harmless.

KEYS[1]      the user's archive ZSET           lr:{b}:u:<uid>:archive
KEYS[2+3i..] per victim: record hash, archived history, archived overflow
ARGV[1]      how many conversations to keep (>= 0)
ARGV[2..]    victim session ids, in the order of their key triples
Replies:
  {sid...}   records still beyond the limit (empty when done)
]]
local archiveKey = KEYS[1]
local keep = tonumber(ARGV[1])
for i = 2, #ARGV do
  local sid = ARGV[i]
  local rank = redis.call('ZRANK', archiveKey, sid)
  if rank and rank < redis.call('ZCARD', archiveKey) - keep then
    local k = 2 + 3 * (i - 2)
    redis.call('ZREM', archiveKey, sid)
    redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
  end
end
local excess = redis.call('ZCARD', archiveKey) - keep
if excess <= 0 then return {} end
return redis.call('ZRANGE', archiveKey, 0, excess - 1)
