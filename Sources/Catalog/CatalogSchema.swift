import GRDB

/// The catalog schema as versioned GRDB migrations. `schema/catalog.sql` is the readable copy
/// of version 1; `CatalogSchemaTests` keeps the two identical.
enum CatalogSchema {
    static let v1 = #"""
-- logitd catalog, schema version 1 (applied by the GRDB migration "v1" in
-- Sources/Catalog/CatalogSchema.swift; a test keeps the two identical).
--
-- The catalog is the commit point of a cache directory: a sequence exists once its row is
-- committed here, after its shard bytes were fsynced. Coverage questions are answered from
-- the per-shard aggregates below and never by scanning shards.
-- Opened in WAL mode; every write transaction commits with synchronous=FULL.
-- File format 2: a checksum in the 8 reserved bytes of every page, application_id 'LGC2'
-- (schema/CATALOG_FILE.md); format-1 files are refused.

-- A named collection with fixed provenance. Immutable once created.
CREATE TABLE dataset (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,       -- [A-Za-z0-9._-]{1,128}, not starting with '.'
    vocab_size      INTEGER NOT NULL CHECK (vocab_size > 0),
    tau             REAL    NOT NULL CHECK (tau > 0 AND tau <= 1),
    k_min           INTEGER NOT NULL CHECK (k_min >= 1),
    k_max           INTEGER NOT NULL CHECK (k_max >= k_min),
    logprob_scale   REAL    NOT NULL CHECK (logprob_scale > 0),  -- quantization codes per nat
    teacher_id      TEXT    NOT NULL,
    tokenizer_id    TEXT    NOT NULL,
    tokenizer_hash  TEXT    NOT NULL,
    created_at      TEXT    NOT NULL               -- ISO 8601, UTC
);

-- One shard file. `path` is relative to the cache directory. An open shard is
-- shards/<dataset>/<generation>-<uuid>.open; sealing renames it to ….lgs.
CREATE TABLE shard (
    id                 INTEGER PRIMARY KEY,
    dataset_id         INTEGER NOT NULL REFERENCES dataset(id),
    uuid               TEXT    NOT NULL UNIQUE,
    generation         INTEGER NOT NULL,           -- 1, 2, … within the dataset
    path               TEXT    NOT NULL UNIQUE,
    state              TEXT    NOT NULL CHECK (state IN ('open', 'sealed', 'quarantined')),
    committed_bytes    INTEGER NOT NULL,           -- durable prefix; the whole file once sealed
    blocks             INTEGER NOT NULL,
    file_hash          TEXT,                       -- XXH3-64 of the sealed file, 16 hex digits
    -- coverage aggregates over the committed sequences of this shard
    sequences          INTEGER NOT NULL DEFAULT 0,
    positions          INTEGER NOT NULL DEFAULT 0,
    candidates         INTEGER NOT NULL DEFAULT 0, -- Σ K
    gold_forced        INTEGER NOT NULL DEFAULT 0,
    covered_mass_sum   REAL    NOT NULL DEFAULT 0, -- Σ over positions of Σ exp(lp): schema/COVERAGE.md
    k_histogram        BLOB    NOT NULL,           -- little-endian u64 counts, index = K
    covered_histogram  BLOB    NOT NULL,           -- little-endian u64 counts, 100 bins over [0, 1]
    quarantine_reason  TEXT,
    created_at         TEXT    NOT NULL,
    sealed_at          TEXT,
    UNIQUE (dataset_id, generation)
);
CREATE INDEX shard_by_dataset ON shard(dataset_id, state);

-- One sequence: where it lives and its own coverage sums.
CREATE TABLE sequence (
    dataset_id        INTEGER NOT NULL REFERENCES dataset(id),
    key               TEXT    NOT NULL,            -- client key, unique within the dataset
    shard_id          INTEGER NOT NULL REFERENCES shard(id),
    block             INTEGER NOT NULL,
    ordinal           INTEGER NOT NULL,            -- index of the sequence within its block
    positions         INTEGER NOT NULL,
    candidates        INTEGER NOT NULL,
    gold_forced       INTEGER NOT NULL,
    covered_mass_sum  REAL    NOT NULL,
    content_hash      INTEGER NOT NULL,            -- XXH3-64 of the canonical record (as i64)
    PRIMARY KEY (dataset_id, key)
) WITHOUT ROWID;
CREATE INDEX sequence_by_location ON sequence(shard_id, block, ordinal);

-- Files found without a catalog row (or unreadable) and moved aside at start-up: never deleted.
CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY,
    original_path  TEXT NOT NULL,
    moved_to       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    at             TEXT NOT NULL
);
"""#

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in try db.execute(sql: v1) }
        return migrator
    }
}
