-- Cross-host calls and placement.
--
-- What each host serves, by route: a host that does not serve a service
-- itself forwards a call for one of these routes to a live host that does.
ALTER TABLE hosts ADD COLUMN routes JSONB NOT NULL DEFAULT '{}';

-- Where a service may run: the ids of the hosts that serve it. A service
-- without a row runs on every host. Every host reads this at each
-- heartbeat; a host not listed stops serving the service and advertising it.
CREATE TABLE placement (
    service    TEXT PRIMARY KEY,
    hosts      TEXT[] NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
