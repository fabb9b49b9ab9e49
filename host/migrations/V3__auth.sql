-- Core auth shared by the hosts of a cluster. Each host keeps its Ed25519
-- private keys in its own data directory and publishes the public halves
-- here; API keys (as keyed hashes), the pepper and revocations live here.
CREATE TABLE cluster_meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    service     TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    host_id    TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
