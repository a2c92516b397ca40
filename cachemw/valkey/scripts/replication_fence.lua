#!lua flags=allow-oom
-- Advance the primary's replication offset on this connection, leaving no data behind, so
-- that a WAIT sent next on the same connection covers every write the primary acknowledged
-- before it. allow-oom: a full Valkey still takes DEL, and logouts must not fail there.
-- KEYS[1] a key in the slot whose primary must be fenced (it is written, then deleted)
redis.call('SET', KEYS[1], '')
redis.call('DEL', KEYS[1])
return 1
