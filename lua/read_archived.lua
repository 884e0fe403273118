#!lua flags=no-writes
--[[
read_archived: one page of an archived conversation, with its record.

A conversation's messages lie in its lists in this order: segments 1..segs,
the archived overflow, the archived history. The caller names a window of
those lists, from the one its cursor is in; the page fills from the cursor's
offset in the first and runs on into the next ones. Archived lists never
change, except that compaction (compact_archive.lua) replaces a unit of them
with a STRING holding one zstd frame; the record's zstd field counts those,
so a cursor stays valid while the record's segs and zstd stay as assumed.
A frame is returned whole (the client decompresses it) and counts as read
to its end; a page holds at most one frame (one unit: a segment, or the
tail, so at most max_overflow + max_history messages) besides its list page.

KEYS[1]   record hash            lr:{b}:u:<uid>:a:<sid>
KEYS[2..] the window of lists    lr:{b}:u:<uid>:a:<sid>:g:<n>, ...:o, ...:h
ARGV[1]   offset in KEYS[2], messages
ARGV[2]   how many messages, at most (0: the record only)
ARGV[3]   the segment count the caller assumed in naming the window; when the
          record says otherwise no message is read
ARGV[4]   the zstd count the caller assumed (optional; -1 or absent: any, for a
          first page at offset 0); when the record says otherwise nothing is read
Replies:
  {{pers, created_ms, ended_ms, reason, count, segs, zstd, mood, summary}, {message...}, done,
   offset, {} or {n, frame}}
  done: how many lists of the window were read to their end; offset: where the
  next page starts in the first list not done; n: how many of the page's list
  messages precede the frame. Record fields are false when the record is gone;
  then no message is read. mood is the session's last mood record (msgpack
  [mood, intensity, ms]), false when it had none; summary its last running summary
  (a message record, set_summary), false when it had none.
]]
local record = redis.call('HMGET', KEYS[1], 'pers', 'created', 'ended', 'reason', 'count', 'segs',
                          'zstd', 'mood', 'summary')
local offset, count, assumed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local assumedFrames = tonumber(ARGV[4] or '-1')
local messages, done, frames = {}, 0, {}
if not record[1] or (tonumber(record[6]) or 0) ~= assumed
    or (assumedFrames >= 0 and (tonumber(record[7]) or 0) ~= assumedFrames) then
  return {record, messages, done, offset, frames}
end
for k = 2, #KEYS do
  local missing = count - #messages
  if missing <= 0 then break end
  if redis.call('TYPE', KEYS[k]).ok == 'string' then
    if #frames > 0 then break end
    frames[1], frames[2] = #messages, redis.call('GET', KEYS[k])
    done, offset = done + 1, 0
  else
    local got = redis.call('LRANGE', KEYS[k], offset, offset + missing - 1)
    for _, m in ipairs(got) do messages[#messages + 1] = m end
    if #got < missing then
      done, offset = done + 1, 0
    else
      offset = offset + #got
    end
  end
end
return {record, messages, done, offset, frames}
