--[[
read_archived: one page of an archived conversation, with its record.

A conversation's messages lie in its lists in this order: segments 1..segs,
the archived overflow, the archived history. The caller names a window of
those lists, from the one its cursor is in; the page fills from the cursor's
offset in the first and runs on into the next ones. Archived lists never
change, so (list, offset) cursors are stable.

KEYS[1]   record hash            lr:{b}:u:<uid>:a:<sid>
KEYS[2..] the window of lists    lr:{b}:u:<uid>:a:<sid>:g:<n>, ...:o, ...:h
ARGV[1]   offset in KEYS[2], messages
ARGV[2]   how many messages, at most (0: the record only)
ARGV[3]   the segment count the caller assumed in naming the window; when the
          record says otherwise no message is read
Replies:
  {{pers, created_ms, ended_ms, reason, count, segs}, {message...}, done, offset}
  done: how many lists of the window were read to their end; offset: where the
  next page starts in the first list not done. Record fields are false when the
  record is gone; then no message is read.
]]
local record = redis.call('HMGET', KEYS[1], 'pers', 'created', 'ended', 'reason', 'count', 'segs')
local offset, count, assumed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local messages, done = {}, 0
if not record[1] or (tonumber(record[6]) or 0) ~= assumed then
  return {record, messages, done, offset}
end
for k = 2, #KEYS do
  local missing = count - #messages
  if missing <= 0 then break end
  local got = redis.call('LRANGE', KEYS[k], offset, offset + missing - 1)
  for _, m in ipairs(got) do messages[#messages + 1] = m end
  if #got < missing then
    done, offset = done + 1, 0
  else
    offset = offset + #got
  end
end
return {record, messages, done, offset}
