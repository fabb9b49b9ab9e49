-- The hosts of a cluster. A host holds its row by a lease judged by the
-- database's clock (no skew between hosts); an expired lease only hides the
-- host from discovery: nothing is ever deleted because a host went quiet.
CREATE TABLE hosts (
    host_id        TEXT PRIMARY KEY,
    -- What other hosts call (`--advertise-url`).
    url            TEXT NOT NULL,
    -- The process holding the id now: a random nonce per start, so a second
    -- live process with the same id is told apart from a restart.
    instance       TEXT NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until    TIMESTAMPTZ NOT NULL,
    -- Service name -> version this host serves.
    services       JSONB NOT NULL DEFAULT '{}'
);
