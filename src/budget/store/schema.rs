//! The ledger's SQLite schema, as an ordered list of embedded migrations.
//!
//! Invariant: migrations are append-only. Never edit one that has shipped; add the next. The
//! version applied is kept in `schema_version` (one row).

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the request log and the two rollups maintained in the same transaction as each row.
    "
    CREATE TABLE requests (
        id                  INTEGER PRIMARY KEY,
        time_us             INTEGER NOT NULL,  -- unix microseconds
        request_id          TEXT    NOT NULL,
        key                 TEXT    NOT NULL,
        team                TEXT,
        route               TEXT    NOT NULL,
        task                TEXT,
        difficulty          TEXT,
        difficulty_score    REAL,
        model               TEXT    NOT NULL,
        tier                TEXT    NOT NULL,
        input_tokens        INTEGER NOT NULL,
        cached_input_tokens INTEGER NOT NULL,
        output_tokens       INTEGER NOT NULL,
        cost                INTEGER NOT NULL,  -- micro-dollars
        baseline_cost       INTEGER NOT NULL,  -- micro-dollars
        status              TEXT    NOT NULL,
        latency_ms          INTEGER NOT NULL,
        estimated           INTEGER NOT NULL,  -- 0 | 1
        overshoot           INTEGER NOT NULL,  -- micro-dollars
        budgets             TEXT    NOT NULL   -- lines of month TAB budget TAB scope_id
    );
    CREATE INDEX requests_by_time ON requests (time_us);

    -- What `Ledger::open` rebuilds from: keyed by budget NAME and scope id, never by limit.
    CREATE TABLE spend_by_budget (
        month     TEXT    NOT NULL,  -- YYYY-MM in the budget's time zone
        budget    TEXT    NOT NULL,
        scope_id  TEXT    NOT NULL,
        spent     INTEGER NOT NULL,  -- micro-dollars, overshoot included
        overshoot INTEGER NOT NULL,  -- micro-dollars
        requests  INTEGER NOT NULL,
        PRIMARY KEY (month, budget, scope_id)
    ) WITHOUT ROWID;

    -- The dashboard's rollup, by UTC day. Absent optional labels are '' (NULLs would defeat
    -- the primary key's upsert).
    CREATE TABLE daily (
        day                 TEXT    NOT NULL,  -- YYYY-MM-DD, UTC
        key                 TEXT    NOT NULL,
        team                TEXT    NOT NULL,
        route               TEXT    NOT NULL,
        model               TEXT    NOT NULL,
        task                TEXT    NOT NULL,
        tier                TEXT    NOT NULL,
        requests            INTEGER NOT NULL,
        input_tokens        INTEGER NOT NULL,
        cached_input_tokens INTEGER NOT NULL,
        output_tokens       INTEGER NOT NULL,
        cost                INTEGER NOT NULL,
        baseline_cost       INTEGER NOT NULL,
        PRIMARY KEY (day, key, team, route, model, task, tier)
    ) WITHOUT ROWID;
    ",
    // 2: the dashboard's task × difficulty grid, by UTC day; backfilled from `requests`.
    "
    CREATE TABLE daily_class (
        day        TEXT    NOT NULL,  -- YYYY-MM-DD, UTC
        task       TEXT    NOT NULL,  -- '' when unclassified
        difficulty TEXT    NOT NULL,  -- '' when unclassified
        requests   INTEGER NOT NULL,
        cost       INTEGER NOT NULL,  -- micro-dollars
        PRIMARY KEY (day, task, difficulty)
    ) WITHOUT ROWID;
    INSERT INTO daily_class (day, task, difficulty, requests, cost)
        SELECT strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), COALESCE(task, ''),
               COALESCE(difficulty, ''), COUNT(*), SUM(cost)
        FROM requests GROUP BY 1, 2, 3;
    ",
    // 3: shadow mode records what the policy would have done, and what it would have cost.
    "
    ALTER TABLE requests ADD COLUMN shadow_model TEXT;
    ALTER TABLE requests ADD COLUMN shadow_cost INTEGER;
    ",
    // 4: why each request went where it did, for the dashboard's recent requests.
    "
    ALTER TABLE requests ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    ",
    // 5: the highest journal sequence number whose row is in `requests` (see `journal.rs`),
    // moved in the same transaction as the rows.
    "
    CREATE TABLE journal_state (seq INTEGER NOT NULL);
    INSERT INTO journal_state (seq) VALUES (0);
    ",
];
