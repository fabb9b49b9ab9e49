-- Signed checkpoints of each host's audit chain (see core/audit/checkpoint.rs):
-- a host writes only its own, each covering the events since its previous
-- one, so `to_seq` orders them and `from_seq` is the previous `to_seq` + 1.
CREATE TABLE audit_checkpoints (
    host_id   TEXT NOT NULL,
    to_seq    BIGINT NOT NULL,
    from_seq  BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    time_ms   BIGINT NOT NULL,
    kid       TEXT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (host_id, to_seq)
);
