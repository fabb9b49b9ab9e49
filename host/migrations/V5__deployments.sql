-- Deployments shared by the hosts of a cluster. Component bytes are stored
-- once under their digest; every version of a service deployed anywhere is
-- listed; `deploy_active` names the version every host serves (NULL: the
-- service was undeployed), and each host follows it. A host that refuses a
-- version keeps the one it had and says why in `hosts.refused`.
CREATE TABLE deploy_components (
    digest    TEXT PRIMARY KEY, -- sha256:<hex> of bytes
    bytes     BYTEA NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE SEQUENCE deploy_order;

CREATE TABLE deploy_versions (
    service     TEXT NOT NULL,
    version     TEXT NOT NULL REFERENCES deploy_components (digest),
    deployed_at BIGINT NOT NULL, -- Unix seconds of its latest deployment
    source      TEXT NOT NULL,
    -- Order of latest deployment (each version once, at its latest).
    ordinal     BIGINT NOT NULL DEFAULT nextval('deploy_order'),
    PRIMARY KEY (service, version)
);

CREATE TABLE deploy_active (
    service    TEXT PRIMARY KEY,
    version    TEXT REFERENCES deploy_components (digest),
    -- Raised at every change, so a host can tell a redeploy of the same
    -- version after an undeploy from no change at all.
    generation BIGINT NOT NULL,
    by_host    TEXT NOT NULL
);

-- Service name -> {"version", "error"} this host refused to serve.
ALTER TABLE hosts ADD COLUMN refused JSONB NOT NULL DEFAULT '{}';
