#!lua
--[[
compat_clear_history: empty the conversation of a live session (LangChain's
``clear``); the session itself stays, and it counts as activity for nobody.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] history list          lr:{b}:s:<sid>:h
KEYS[3] overflow list         lr:{b}:s:<sid>:o
KEYS[4] running summary hash  lr:{b}:s:<sid>:sum   (it summarized what is cleared)
ARGV none
Replies:
  {1}   cleared
  {0}   the session is not live; nothing written
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return {1}
