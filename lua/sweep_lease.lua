#!lua
--[[
sweep_lease: take, renew or release the lease that lets one listener of a key
prefix run the periodic full sweeps (lr:sweeper), or the periodic full outbox
scans (lr:deliverer), so their cost does not grow with the number of
listeners. The holder renews it every interval; a holder that dies stops
renewing, and the first listener to ask after the lease lapsed takes it over.

KEYS[1] the lease             lr:sweeper or lr:deliverer   (string: the holder's id, with a TTL)
ARGV[1] the asking listener's id (unique per running listener)
ARGV[2] lease length, milliseconds (> 0), or 0 to release a lease this listener holds
Replies:
  {1}                       held by the asker (taken or renewed; for 0: released)
  {0, holder, ms_left}      held by another listener for ms_left more milliseconds
]]
local leaseKey = KEYS[1]
local me, ms = ARGV[1], tonumber(ARGV[2])
local holder = redis.call('GET', leaseKey)
if holder and holder ~= me then
  return {0, holder, redis.call('PTTL', leaseKey)}
end
if ms == 0 then
  if holder then redis.call('DEL', leaseKey) end
  return {1}
end
redis.call('SET', leaseKey, me, 'PX', ms)
return {1}
