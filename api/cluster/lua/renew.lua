-- renew(instance, lease_ms, task_ids...) -> the task ids this instance no longer holds.
local instance, lease_ms = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
redis.call('ZADD', K.workers, now + lease_ms, instance)
-- Workers gone for a day are forgotten: the set stays as small as the live fleet.
redis.call('ZREMRANGEBYSCORE', K.workers, '-inf', now - 86400000)
local lost = {}
for i = 3, #ARGV do
  local task_id = ARGV[i]
  local entry = redis.call('HGET', K.entries, task_id)
  if entry and holds(redis.call('HGET', K.leases, task_id), instance) then
    -- Resets the entry's idle time: XAUTOCLAIM by others only takes entries whose
    -- holder has not renewed within the lease.
    redis.call('XCLAIM', K.tasks, GROUP, instance, 0, entry, 'JUSTID')
  else
    table.insert(lost, task_id)
  end
end
return lost
