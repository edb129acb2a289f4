//! The ledger's PostgreSQL schema, as an ordered list of embedded migrations.
//!
//! The same tables as SQLite (`schema.rs`), plus what several replicas share:
//! - `spend_by_budget.held`: money reserved and not yet settled, over every replica;
//! - `holds`: one row per outstanding reservation, so a settle releases exactly its own hold
//!   and a dead replica's holds can be found and reclaimed;
//! - `replicas`: each replica's last heartbeat.
//!
//! Reservations are atomic conditional updates: `sy_reserve` locks every budget row the
//! request touches (in key order, so concurrent callers cannot deadlock on each other), checks
//! `spent + held + amount <= limit` for each, and only then adds the hold to all of them: all
//! or nothing, in one statement, so caps hold exactly across replicas.
//!
//! Invariants: migrations are append-only (never edit one that has shipped; add the next);
//! `spend_by_budget.held` equals the sum of `holds.amount` over the holds charging that row.

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: tables, rollups and the reservation functions.
    r#"
    CREATE TABLE requests (
        id                  BIGSERIAL PRIMARY KEY,
        time_us             BIGINT  NOT NULL,  -- unix microseconds
        request_id          TEXT    NOT NULL,
        key                 TEXT    NOT NULL,
        team                TEXT,
        route               TEXT    NOT NULL,
        task                TEXT,
        difficulty          TEXT,
        difficulty_score    REAL,
        model               TEXT    NOT NULL,
        tier                TEXT    NOT NULL,
        input_tokens        BIGINT  NOT NULL,
        cached_input_tokens BIGINT  NOT NULL,
        output_tokens       BIGINT  NOT NULL,
        cost                BIGINT  NOT NULL,  -- micro-dollars
        baseline_cost       BIGINT  NOT NULL,  -- micro-dollars
        status              TEXT    NOT NULL,
        latency_ms          BIGINT  NOT NULL,
        estimated           BOOLEAN NOT NULL,
        overshoot           BIGINT  NOT NULL,  -- micro-dollars
        budgets             TEXT    NOT NULL,  -- lines of month TAB budget TAB scope_id
        shadow_model        TEXT,
        shadow_cost         BIGINT,
        reason              TEXT    NOT NULL DEFAULT '',
        replica             TEXT    NOT NULL
    );
    CREATE INDEX requests_by_time ON requests (time_us);

    CREATE TABLE spend_by_budget (
        month     TEXT   NOT NULL,  -- YYYY-MM in the budget's time zone
        budget    TEXT   NOT NULL,
        scope_id  TEXT   NOT NULL,
        spent     BIGINT NOT NULL DEFAULT 0,  -- micro-dollars, overshoot included
        overshoot BIGINT NOT NULL DEFAULT 0,
        requests  BIGINT NOT NULL DEFAULT 0,
        held      BIGINT NOT NULL DEFAULT 0,  -- reserved, not yet settled, every replica
        PRIMARY KEY (month, budget, scope_id)
    );

    CREATE TABLE holds (
        id        BIGSERIAL PRIMARY KEY,
        replica   TEXT     NOT NULL,
        amount    BIGINT   NOT NULL,
        months    TEXT[]   NOT NULL,
        budgets   TEXT[]   NOT NULL,
        scope_ids TEXT[]   NOT NULL,
        made_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX holds_by_replica ON holds (replica);

    CREATE TABLE replicas (
        id      TEXT PRIMARY KEY,
        seen_at TIMESTAMPTZ NOT NULL
    );

    CREATE TABLE daily (
        day                 TEXT   NOT NULL,  -- YYYY-MM-DD, UTC
        key                 TEXT   NOT NULL,
        team                TEXT   NOT NULL,
        route               TEXT   NOT NULL,
        model               TEXT   NOT NULL,
        task                TEXT   NOT NULL,
        tier                TEXT   NOT NULL,
        requests            BIGINT NOT NULL,
        input_tokens        BIGINT NOT NULL,
        cached_input_tokens BIGINT NOT NULL,
        output_tokens       BIGINT NOT NULL,
        cost                BIGINT NOT NULL,
        baseline_cost       BIGINT NOT NULL,
        PRIMARY KEY (day, key, team, route, model, task, tier)
    );

    CREATE TABLE daily_class (
        day        TEXT   NOT NULL,
        task       TEXT   NOT NULL,
        difficulty TEXT   NOT NULL,
        requests   BIGINT NOT NULL,
        cost       BIGINT NOT NULL,
        PRIMARY KEY (day, task, difficulty)
    );

    -- Locks the rows of the given budget copies, creating missing ones, in key order.
    CREATE FUNCTION sy_lock(p_months TEXT[], p_budgets TEXT[], p_scopes TEXT[])
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO spend_by_budget (month, budget, scope_id)
            SELECT t.m, t.b, t.s FROM unnest(p_months, p_budgets, p_scopes) AS t(m, b, s)
            ORDER BY 1, 2, 3
            ON CONFLICT DO NOTHING;
        PERFORM 1 FROM spend_by_budget x
            JOIN unnest(p_months, p_budgets, p_scopes) AS t(m, b, s)
              ON x.month = t.m AND x.budget = t.b AND x.scope_id = t.s
            ORDER BY x.month, x.budget, x.scope_id
            FOR UPDATE OF x;
    END $$;

    -- (spent, held) of the given copies, in the order given.
    CREATE FUNCTION sy_read(p_months TEXT[], p_budgets TEXT[], p_scopes TEXT[],
                            OUT spent BIGINT[], OUT held BIGINT[])
    LANGUAGE sql STABLE AS $$
        SELECT coalesce(array_agg(x.spent ORDER BY t.i), '{}'),
               coalesce(array_agg(x.held ORDER BY t.i), '{}')
        FROM unnest(p_months, p_budgets, p_scopes) WITH ORDINALITY AS t(m, b, s, i)
        JOIN spend_by_budget x ON x.month = t.m AND x.budget = t.b AND x.scope_id = t.s
    $$;

    -- Reserve p_amount in every given copy, or in none. refused = 0 and a hold id on success;
    -- otherwise the 1-based index of the first copy (in the order given) that cannot take it.
    -- spent and held: each copy's standing after the reservation, or at the refusal.
    CREATE FUNCTION sy_reserve(p_replica TEXT, p_amount BIGINT, p_months TEXT[],
                               p_budgets TEXT[], p_scopes TEXT[], p_limits BIGINT[],
                               OUT hold_id BIGINT, OUT refused INT,
                               OUT spent BIGINT[], OUT held BIGINT[])
    LANGUAGE plpgsql AS $$
    BEGIN
        -- A hold needs no fsync: lost in a PostgreSQL crash, it only stops holding; the spend
        -- it covers is still charged by sy_settle, whose commit follows the session's setting.
        PERFORM set_config('synchronous_commit', 'off', true);
        refused := 0;
        PERFORM sy_lock(p_months, p_budgets, p_scopes);
        SELECT r.spent, r.held INTO spent, held FROM sy_read(p_months, p_budgets, p_scopes) r;
        FOR i IN 1 .. coalesce(array_length(p_months, 1), 0) LOOP
            IF spent[i] + held[i] + p_amount > p_limits[i] THEN
                refused := i;
                RETURN;
            END IF;
        END LOOP;
        UPDATE spend_by_budget x SET held = x.held + p_amount
            FROM unnest(p_months, p_budgets, p_scopes) AS t(m, b, s)
            WHERE x.month = t.m AND x.budget = t.b AND x.scope_id = t.s;
        INSERT INTO holds (replica, amount, months, budgets, scope_ids)
            VALUES (p_replica, p_amount, p_months, p_budgets, p_scopes)
            RETURNING id INTO hold_id;
        FOR i IN 1 .. coalesce(array_length(p_months, 1), 0) LOOP
            held[i] := held[i] + p_amount;
        END LOOP;
    END $$;

    -- Move a hold to p_amount, checking every copy first when it grows. refused = -1 when the
    -- hold is gone (reclaimed), i > 0 for the first copy that cannot take the increase.
    CREATE FUNCTION sy_resize(p_hold BIGINT, p_amount BIGINT, p_limits BIGINT[],
                              OUT refused INT, OUT spent BIGINT[], OUT held BIGINT[])
    LANGUAGE plpgsql AS $$
    DECLARE
        h holds%ROWTYPE;
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        refused := 0;
        SELECT * INTO h FROM holds WHERE id = p_hold FOR UPDATE;
        IF NOT FOUND THEN
            refused := -1;
            RETURN;
        END IF;
        PERFORM sy_lock(h.months, h.budgets, h.scope_ids);
        SELECT r.spent, r.held INTO spent, held FROM sy_read(h.months, h.budgets, h.scope_ids) r;
        IF p_amount > h.amount THEN
            FOR i IN 1 .. coalesce(array_length(h.months, 1), 0) LOOP
                IF spent[i] + held[i] + (p_amount - h.amount) > p_limits[i] THEN
                    refused := i;
                    RETURN;
                END IF;
            END LOOP;
        END IF;
        UPDATE spend_by_budget x SET held = greatest(x.held - h.amount + p_amount, 0)
            FROM unnest(h.months, h.budgets, h.scope_ids) AS t(m, b, s)
            WHERE x.month = t.m AND x.budget = t.b AND x.scope_id = t.s;
        UPDATE holds SET amount = p_amount WHERE id = p_hold;
        FOR i IN 1 .. coalesce(array_length(h.months, 1), 0) LOOP
            held[i] := greatest(held[i] - h.amount + p_amount, 0);
        END LOOP;
    END $$;

    -- Settle one request: release its hold (if it still exists: a reclaimed hold was already
    -- released) and charge p_cost to every given copy.
    CREATE FUNCTION sy_settle(p_hold BIGINT, p_cost BIGINT, p_overshoot BIGINT,
                              p_months TEXT[], p_budgets TEXT[], p_scopes TEXT[])
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        h holds%ROWTYPE;
    BEGIN
        PERFORM sy_lock(p_months, p_budgets, p_scopes);
        IF p_hold IS NOT NULL THEN
            DELETE FROM holds WHERE id = p_hold RETURNING * INTO h;
            IF FOUND THEN
                UPDATE spend_by_budget x SET held = greatest(x.held - h.amount, 0)
                    FROM unnest(h.months, h.budgets, h.scope_ids) AS t(m, b, s)
                    WHERE x.month = t.m AND x.budget = t.b AND x.scope_id = t.s;
            END IF;
        END IF;
        UPDATE spend_by_budget x SET spent = x.spent + p_cost,
                                     overshoot = x.overshoot + p_overshoot,
                                     requests = x.requests + 1
            FROM unnest(p_months, p_budgets, p_scopes) AS t(m, b, s)
            WHERE x.month = t.m AND x.budget = t.b AND x.scope_id = t.s;
    END $$;

    -- Release the holds of replicas not seen for p_ttl_ms, and every hold of p_replica (a
    -- replica restarting under the same id: none of its old requests can still be running).
    -- Returns the number of holds released.
    CREATE FUNCTION sy_reclaim(p_ttl_ms BIGINT, p_replica TEXT)
    RETURNS BIGINT LANGUAGE plpgsql AS $$
    DECLARE
        h holds%ROWTYPE;
        n BIGINT := 0;
    BEGIN
        FOR h IN
            SELECT * FROM holds x
            WHERE x.replica = p_replica
               OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = x.replica
                              AND r.seen_at > clock_timestamp() - p_ttl_ms * interval '1 millisecond')
            ORDER BY x.id
            FOR UPDATE SKIP LOCKED
        LOOP
            PERFORM sy_lock(h.months, h.budgets, h.scope_ids);
            UPDATE spend_by_budget x SET held = greatest(x.held - h.amount, 0)
                FROM unnest(h.months, h.budgets, h.scope_ids) AS t(m, b, s)
                WHERE x.month = t.m AND x.budget = t.b AND x.scope_id = t.s;
            DELETE FROM holds WHERE id = h.id;
            n := n + 1;
        END LOOP;
        RETURN n;
    END $$;
    "#,
];
