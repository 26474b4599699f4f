-- Retention per namespace and lane (rfcs/0010), the same schema version as
-- migrations/postgres/0012_retention.sql. A rule keeps the finished
-- executions of a namespace, or of one lane of it (`lane` empty: every
-- lane without a rule of its own), for `keep_ms` after they finish instead
-- of the deployment's default (`baton serve --retention`).
--
-- An execution is stamped at create with the keep of the rule covering it
-- (`executions.keep_ms`; NULL: the default). The trim pass reads due roots
-- only, in two ranges, each with its index: those with a keep by
-- `COALESCE(trim_at, finished_at) + keep_ms`, the rest by
-- `COALESCE(trim_at, finished_at)` against now minus the default; so
-- roots kept long never stand in the way of the ones due. It then asks the
-- rules in force (`rules::trim_verdict`): one a newer rule keeps longer is
-- re-stamped, not trimmed. `trim_at` stays what it was: when a root whose
-- flow was still open was last looked at (its keep counts from then).
--
-- Upgrading: the two indexes are built in this migration's transaction,
-- without CONCURRENTLY, so on a large `executions` table writes wait until
-- they are built; upgrade in a quiet window.
CREATE TABLE retention_rules (
    namespace TEXT    NOT NULL,
    lane      TEXT    NOT NULL,
    keep_ms   INTEGER NOT NULL CHECK (keep_ms >= 1000),
    PRIMARY KEY (namespace, lane)
) STRICT, WITHOUT ROWID;

ALTER TABLE executions ADD COLUMN keep_ms INTEGER;

DROP INDEX executions_retention;
CREATE INDEX executions_retention
    ON executions (partition, (COALESCE(trim_at, finished_at)), uuid)
    WHERE finished_at IS NOT NULL AND root IS NULL AND keep_ms IS NULL;
CREATE INDEX executions_retention_kept
    ON executions (partition, (COALESCE(trim_at, finished_at) + keep_ms), uuid)
    WHERE finished_at IS NOT NULL AND root IS NULL AND keep_ms IS NOT NULL;
