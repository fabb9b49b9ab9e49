-- Every service's private store. The host chooses `service` from the
-- caller identity it stamped, never from anything a component passes.
-- COLLATE "C": keys compare and sort by bytes, as in the embedded SQLite
-- stores, so `list-keys` cursors mean the same on both backends.
CREATE TABLE store_records (
    service TEXT NOT NULL,
    key     TEXT COLLATE "C" NOT NULL,
    value   BYTEA NOT NULL,
    PRIMARY KEY (service, key)
);

-- Bytes of keys plus values per service, updated in the same transaction
-- as the records: quotas are exact across hosts. Its row lock also
-- serialises one service's write transactions, which makes
-- compare-and-swap and increment atomic across hosts.
CREATE TABLE store_usage (
    service TEXT PRIMARY KEY,
    used    BIGINT NOT NULL DEFAULT 0
);
