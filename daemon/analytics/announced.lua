-- announced.lua — marks a bottleneck decision announced once Kafka acknowledged its event,
-- compare-and-set: only while the stage's stored decision is still the one that event
-- announced. A late acknowledgement (a retried delivery, a daemon that stalled) must never
-- overwrite a newer decision of another tick, which would lose or resurrect a raise.
-- needs:
--
-- KEYS[1] the funnel's bottleneck state "<prefix>:bn:<funnel>" (see evaluate.c)
-- ARGV: 1 stage index 2 the value the announced event recorded ("<tick>|p" raised, or
--   "<tick>|c" cleared) 3 the value once announced ("<tick>|a"), or '' to delete the field
--   (a clearing announced leaves no field)
-- Returns 1 when applied, 0 when the stored value was another (then nothing changes).

local key, field, was, now = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', key, field) ~= was then return 0 end
if now == '' then
  redis.call('HDEL', key, field)
else
  redis.call('HSET', key, field, now)
end
return 1
