-- proofrecon analytics schema, version 2: severity rates pre-aggregated per (hour, mint, severity).
--
-- Version 1's severity_rates_hourly is a UNION ALL + GROUP BY over discrepancy_hourly and
-- proof_checks_hourly, planned and aggregated on every query: over 30 days of 10M discrepancies
-- (17k result rows) ~27 ms here, most of it merging the two tables into (hour, mint, severity).
-- severity_hourly holds exactly those rows, so the view becomes one GROUP BY over one table
-- (~10 ms; 24 hours: ~8 -> ~4 ms). It is fed by materialized views chained on the two hourly
-- tables: a few hundred rows per sink insert, about 3% of the insert's time.
--
-- No double counting: the same deduplication window as every MV target, so a replayed sink batch
-- adds nothing here either. The backfill copies what the hourly tables held before this
-- migration; its tokens make a re-run (after a migration cut short) add nothing. It runs after
-- the views exist, so apply it with no sink writing: a sink applies migrations at start, before
-- it consumes; with several sinks on one server, stop them and run `proofrecon clickhouse
-- migrate` (an insert between the views' creation and the backfill would count twice).

CREATE TABLE IF NOT EXISTS {db}.severity_hourly
(
    hour            DateTime('UTC'),
    mint_url        LowCardinality(String),
    severity        LowCardinality(String),
    discrepancies   UInt64,
    proofs_checked  UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, mint_url, severity)
TTL hour + toIntervalDay({hourly_ttl_days})
SETTINGS non_replicated_deduplication_window = {dedup_window}
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.severity_hourly_discrepancies_mv
TO {db}.severity_hourly AS
SELECT
    hour,
    mint_url,
    severity,
    sum(discrepancies) AS discrepancies,
    toUInt64(0) AS proofs_checked
FROM {db}.discrepancy_hourly
GROUP BY hour, mint_url, severity
;
-- Every (hour, mint) with checks gets a row per severity, zero discrepancies included.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.severity_hourly_checks_mv
TO {db}.severity_hourly AS
SELECT
    hour,
    mint_url,
    severity,
    toUInt64(0) AS discrepancies,
    sum(proofs_checked) AS proofs_checked
FROM {db}.proof_checks_hourly
ARRAY JOIN ['HIGH', 'MEDIUM', 'LOW'] AS severity
GROUP BY hour, mint_url, severity
;
INSERT INTO {db}.severity_hourly
SETTINGS insert_deduplication_token = 'proofrecon-migration-002-discrepancies'
SELECT hour, mint_url, severity, sum(discrepancies), toUInt64(0)
FROM {db}.discrepancy_hourly
GROUP BY hour, mint_url, severity
;
INSERT INTO {db}.severity_hourly
SETTINGS insert_deduplication_token = 'proofrecon-migration-002-checks'
SELECT hour, mint_url, severity, toUInt64(0), sum(proofs_checked)
FROM {db}.proof_checks_hourly
ARRAY JOIN ['HIGH', 'MEDIUM', 'LOW'] AS severity
GROUP BY hour, mint_url, severity
;
-- The same columns and rows as version 1's view; discrepancies found in an hour without recorded
-- checks still have rate_per_1k NULL.
CREATE OR REPLACE VIEW {db}.severity_rates_hourly AS
SELECT
    hour,
    mint_url,
    severity,
    sum(discrepancies) AS discrepancies,
    sum(proofs_checked) AS proofs_checked,
    if(proofs_checked = 0, NULL, round(1000 * discrepancies / proofs_checked, 3)) AS rate_per_1k
FROM {db}.severity_hourly
GROUP BY hour, mint_url, severity
