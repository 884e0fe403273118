--[[
claim_layout: record the bucket count of this key prefix on first use and
return the recorded one. Users map to buckets by a hash modulo this count, so
every store sharing a prefix must agree on it forever.

KEYS[1] layout hash           lr:layout
ARGV[1] bucket count this store would use on a fresh keyspace
Replies:
  {bucket_count}   the count on record
]]
redis.call('HSETNX', KEYS[1], 'buckets', ARGV[1])
return {tonumber(redis.call('HGET', KEYS[1], 'buckets'))}
