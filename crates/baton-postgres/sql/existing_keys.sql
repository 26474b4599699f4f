-- create: the executions owning idempotency keys this call did not take.
-- $1, $2, $3, $4: namespace, lane, session ('' for none) and key arrays. A
-- key whose execution was trimmed since is absent from the answer
-- (trimming deletes both in one transaction); a key row without its
-- execution answers a NULL state.
SELECT q.ord, k.partition, k.uuid, e.state
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
    WITH ORDINALITY AS q(namespace, lane, session, key, ord)
JOIN idempotency_keys k ON k.namespace = q.namespace AND k.lane = q.lane
    AND k.session = q.session AND k.key = q.key
LEFT JOIN executions e ON e.partition = k.partition AND e.uuid = k.uuid
