-- Shared by the layouts probe (see run.sh here): one 1 KiB payload row,
-- the now() in ms every statement stamps, and a time-ordered uuid like
-- the engine's (v7-shaped: 48 bits of ms first), so primary-key inserts
-- land at the right edge of each child's index as Baton's do.
CREATE TABLE IF NOT EXISTS probe_payload (b bytea NOT NULL);
TRUNCATE probe_payload;
INSERT INTO probe_payload VALUES (decode(repeat('ab', 1024), 'hex'));
CREATE OR REPLACE FUNCTION probe_now() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
CREATE OR REPLACE FUNCTION probe_uuid() RETURNS uuid LANGUAGE sql VOLATILE AS
$$ SELECT (lpad(to_hex(probe_now()), 12, '0') || substr(md5(random()::text), 1, 20))::uuid $$;
