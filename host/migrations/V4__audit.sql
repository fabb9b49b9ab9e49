-- The cluster's audit log: one hash chain per host, so hosts never take a
-- lock together to append. A host is the only writer of its chain (it holds
-- its id by a lease), numbers its events from 1 without gaps, and commits
-- them in groups. Within a chain `time_ms` never decreases, so reading all
-- chains merged by time, with a cursor that remembers each chain's last
-- `seq`, misses nothing that commits later.
CREATE TABLE audit_events (
    host_id  TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    time_ms  BIGINT NOT NULL,
    service  TEXT NOT NULL,
    level    SMALLINT NOT NULL, -- 0 debug, 1 info, 2 warn, 3 error
    message  TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    hash     TEXT NOT NULL,
    PRIMARY KEY (host_id, seq)
);
CREATE INDEX audit_events_service ON audit_events (service, host_id, seq);
CREATE INDEX audit_events_trace ON audit_events (trace_id) WHERE trace_id <> '';
