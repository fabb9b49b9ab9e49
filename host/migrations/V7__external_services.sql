-- External (non-wasm) services registered through any host of a cluster,
-- so that discovery on every host finds them. `entry` is the registration as
-- the registry lists it; `expires_at` (Unix seconds, as in the entry) ends a
-- registration made with a TTL unless it is renewed.
CREATE TABLE external_services (
    name       TEXT PRIMARY KEY,
    entry      JSONB NOT NULL,
    expires_at BIGINT
);
