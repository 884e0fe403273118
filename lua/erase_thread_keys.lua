#!lua
--[[
erase_thread_keys: part of erase_user: delete the LangGraph checkpointer's keys
of one archived session of the user being erased. A thread's keys expire with
its session, but a session ended early (end_session, delete_thread) leaves them
until that deadline; archiving moves only the conversation. Runs after the run
records have forgotten the thread (their run ids are read from these keys), and
before the archived record that names the thread goes, so a rerun after a crash
finds the rest.

KEYS[1] thread data hash      lr:{b}:s:<sid>:lg:d
KEYS[2] thread order zset     lr:{b}:s:<sid>:lg:o
KEYS[3] thread message ids    lr:{b}:s:<sid>:lg:n
ARGV    none
Replies:
  removed_keys   0 to 3
]]
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
