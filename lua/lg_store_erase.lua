#!lua
--[[
lg_store_erase: remove every item of a user's LangGraph store (part of erase_user).
UNLINK frees large collections off Redis's main thread.

KEYS[1] items     lr:{b}:u:<uid>:lg:i
KEYS[2] index     lr:{b}:u:<uid>:lg:x
KEYS[3] spaces    lr:{b}:u:<uid>:lg:n
KEYS[4] expiries  lr:{b}:u:<uid>:lg:e
KEYS[5] ttls      lr:{b}:u:<uid>:lg:t
ARGV    none
Replies:
  removed_keys
]]
return redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
