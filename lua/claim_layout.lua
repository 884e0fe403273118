#!lua flags=allow-oom
--[[
claim_layout: record the bucket count and layout version of this key prefix
on first use and return the recorded ones. Users map to buckets by a hash
modulo this count, so every store sharing a prefix must agree on it forever;
the version says how the keys are laid out, so a store can refuse a layout
newer than it understands.

Flagged allow-oom: every store runs this before its first operation, reads
included, and reads must keep working when Redis is over maxmemory. It writes
nothing when the layout is on record, else two small fields, once per keyspace.

KEYS[1] layout hash           lr:layout   (buckets, version)
ARGV[1] bucket count this store would use on a fresh keyspace
ARGV[2] layout version this store writes on a fresh keyspace
Replies:
  {bucket_count, version}   the ones on record; version 1 when a layout written before
                            versions were recorded has none
]]
if redis.call('HSETNX', KEYS[1], 'buckets', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'version', ARGV[2])
end
local fields = redis.call('HMGET', KEYS[1], 'buckets', 'version')
return {tonumber(fields[1]), tonumber(fields[2] or '1')}
