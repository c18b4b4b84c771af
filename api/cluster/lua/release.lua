-- release(instance, task_ids...) -> how many were handed back.
local instance = ARGV[1]
local now = now_ms()
local released = 0
for i = 2, #ARGV do
  local task_id = ARGV[i]
  local entry = redis.call('HGET', K.entries, task_id)
  if entry and holds(redis.call('HGET', K.leases, task_id), instance) then
    redis.call('HDEL', K.leases, task_id)
    -- Idle since the epoch: any lease has expired, so the next claim takes it at once.
    redis.call('XCLAIM', K.tasks, GROUP, instance, 0, entry, 'IDLE', now, 'JUSTID')
    released = released + 1
  end
end
if released > 0 then
  control_entry('tasks', '*', instance, 'released', '')
end
return released
