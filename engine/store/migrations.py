# Over 400 lines: the schema is one ordered tuple of migrations, appended to and never split.
"""The state store's schema, as the ordered list of migrations that build it.

One tuple in one place: a new table or column is a new entry appended at the end (never an edit
of an old one); `PRAGMA user_version` counts the entries a store has run
(`engine.store.connection` runs the missing ones on open).
"""

from __future__ import annotations


def _mark(scan: str, unless: str = "0") -> str:
    """Trigger statements that move one scan's change mark past every other (`unless` true:
    nothing to do, such as an old row's scan that the new row's mark covers)."""
    return f"""
        INSERT INTO scan_changes(scan, seq) SELECT {scan}, 0
            WHERE {scan} IS NOT NULL AND NOT ({unless})
              AND NOT EXISTS (SELECT 1 FROM scan_changes WHERE scan = {scan});
        UPDATE scan_changes SET seq = (SELECT max(seq) + 1 FROM scan_changes)
            WHERE scan = {scan} AND NOT ({unless});"""


def _mark_all(scans: str) -> str:
    """Trigger statements that move a set of scans' change marks past every other."""
    return f"""
        INSERT INTO scan_changes(scan, seq) SELECT s.scan, 0 FROM ({scans}) s
            WHERE s.scan IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM scan_changes c WHERE c.scan = s.scan);
        UPDATE scan_changes SET seq = (SELECT max(seq) + 1 FROM scan_changes)
            WHERE scan IN (SELECT scan FROM ({scans}));"""


def _differ(columns: str) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns.split())


def _triggers(table: str, scan: str, columns: str, extra: str = "", name: str = "") -> str:
    """Insert, delete and (when one of `columns` changed) update triggers on `table` marking
    `scan` (an expression over `{row}`, the old or new row); `name` tells two sets apart."""
    name = name or table
    old, new = scan.replace("{row}", "OLD"), scan.replace("{row}", "NEW")
    when = _differ(columns) + (f" OR ({extra})" if extra else "")
    return f"""
    CREATE TRIGGER {name}_marks_insert AFTER INSERT ON {table} BEGIN {_mark(new)} END;
    CREATE TRIGGER {name}_marks_delete AFTER DELETE ON {table} BEGIN {_mark(old)} END;
    CREATE TRIGGER {name}_marks_update AFTER UPDATE ON {table} WHEN {when}
    BEGIN {_mark(old, unless=f"{old} IS {new}")} {_mark(new)} END;"""


def _task_scans(row: str) -> str:
    return f"""SELECT scan FROM task_items WHERE submission_id = {row}.submission_id
               UNION SELECT a.scan FROM task_items i JOIN actions a ON a.id = i.action_id
               WHERE i.submission_id = {row}.submission_id"""


_ACTION_SCAN = "(SELECT scan FROM actions WHERE id = {row}.action_id)"

_CHANGE_MARKS = (
    """
    CREATE TABLE change_epoch(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch TEXT NOT NULL
    );
    INSERT INTO change_epoch VALUES (1, lower(hex(randomblob(16))));
    CREATE TABLE scan_changes(
        scan TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX scan_changes_seq ON scan_changes(seq);
    CREATE INDEX actions_registered ON actions(updated_at)
        WHERE status = 'succeeded' AND kind IN ('register', 'update_catalog');
    """
    + _triggers("scans", "{row}.id", "id size acquired_at")
    + _triggers("replicas", "{row}.scan", "scan endpoint level")
    + _triggers("deletions", "{row}.scan", "scan endpoint")
    + _triggers(
        "actions",
        "{row}.scan",
        "id kind scan source target status requires_approval reason error submission_id",
        "OLD.updated_at IS NOT NEW.updated_at AND NEW.status = 'succeeded'"
        " AND NEW.kind IN ('register', 'update_catalog')",
    )
    + _triggers("decisions", _ACTION_SCAN, "action_id decision superseded spent_by")
    + _triggers("holds", "{row}.scan", "scan reason expires_at lifted_at")
    + _triggers("blocked", "{row}.scan", "scan kind endpoint reason_code reason")
    + _triggers("catalog_entries", "{row}.scan", "scan")
    + _triggers("task_items", "{row}.scan", "submission_id action_id scan files_done bytes_done")
    + _triggers(
        "task_items",
        _ACTION_SCAN,
        "submission_id action_id scan files_done bytes_done",
        name="task_items_action",
    )
    + f"""
    CREATE TRIGGER tasks_marks_insert AFTER INSERT ON tasks BEGIN {_mark_all(_task_scans("NEW"))} END;
    CREATE TRIGGER tasks_marks_delete AFTER DELETE ON tasks BEGIN {_mark_all(_task_scans("OLD"))} END;
    CREATE TRIGGER tasks_marks_update AFTER UPDATE ON tasks WHEN {_differ("submission_id status")}
    BEGIN {_mark_all(_task_scans("OLD"))} {_mark_all(_task_scans("NEW"))} END;
    """
)


MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE scans(
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        checksum_algorithm TEXT NOT NULL,
        checksum TEXT NOT NULL,
        is_directory INTEGER NOT NULL,
        acquired_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        file_count INTEGER NOT NULL,
        files TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE replicas(
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        level INTEGER NOT NULL,
        size INTEGER NOT NULL,
        files INTEGER NOT NULL,
        signature TEXT NOT NULL,
        observed_at TEXT NOT NULL,
        PRIMARY KEY(scan, endpoint)
    ) WITHOUT ROWID;
    CREATE INDEX replicas_endpoint ON replicas(endpoint);
    CREATE TABLE evidence(
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        level INTEGER NOT NULL,
        algorithm TEXT,
        value TEXT,
        task_id TEXT,
        signature TEXT NOT NULL,
        how TEXT NOT NULL,
        verified_at TEXT NOT NULL,
        PRIMARY KEY(scan, endpoint)
    ) WITHOUT ROWID;
    CREATE TABLE actions(
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        scan TEXT NOT NULL,
        source TEXT,
        target TEXT,
        bytes INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        requires_approval INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        submission_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error_class TEXT,
        error TEXT,
        retry_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX actions_status ON actions(status);
    CREATE INDEX actions_scan ON actions(scan);
    CREATE TABLE tasks(
        submission_id TEXT PRIMARY KEY,
        task_id TEXT,
        mover TEXT NOT NULL,
        kind TEXT NOT NULL,
        source TEXT,
        target TEXT NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        files_total INTEGER NOT NULL DEFAULT 0,
        files_done INTEGER NOT NULL DEFAULT 0,
        rate REAL NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX tasks_status ON tasks(status);
    CREATE TABLE task_items(
        submission_id TEXT NOT NULL,
        action_id TEXT NOT NULL,
        scan TEXT NOT NULL,
        PRIMARY KEY(submission_id, action_id)
    ) WITHOUT ROWID;
    CREATE INDEX task_items_action ON task_items(action_id);
    CREATE TABLE events(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        level TEXT NOT NULL DEFAULT 'info',
        kind TEXT NOT NULL,
        scan TEXT,
        action_id TEXT,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX events_scan ON events(scan);
    CREATE INDEX events_action ON events(action_id);
    CREATE TABLE approvals(
        action_id TEXT PRIMARY KEY,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE holds(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scan TEXT NOT NULL,
        reason TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        expires_at TEXT,
        lifted_by TEXT,
        lifted_at TEXT
    );
    CREATE INDEX holds_scan ON holds(scan);
    CREATE TABLE retries(
        action_id TEXT PRIMARY KEY,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL
    );
    CREATE TABLE deletions(
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        action_id TEXT NOT NULL,
        task_id TEXT,
        deleted_at TEXT NOT NULL,
        receipt TEXT NOT NULL,
        PRIMARY KEY(scan, endpoint, action_id)
    );
    CREATE TABLE endpoints(
        name TEXT PRIMARY KEY,
        last_ok_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE heartbeat(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER,
        host TEXT,
        mode TEXT,
        beat_at TEXT,
        pass_started_at TEXT,
        pass_finished_at TEXT,
        last_ok_pass_at TEXT,
        summary TEXT
    );
    """,
    # 2: typed alerts with acknowledgements; endpoint identities
    """
    CREATE TABLE alerts(
        id TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        endpoint TEXT,
        scan TEXT,
        effect TEXT NOT NULL,
        message TEXT NOT NULL,
        since TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        cleared_at TEXT,
        acknowledged_by TEXT,
        acknowledged_at TEXT,
        acknowledged_why TEXT
    );
    CREATE TABLE endpoint_identity(
        endpoint TEXT PRIMARY KEY,
        marker_id TEXT NOT NULL,
        root TEXT NOT NULL,
        device INTEGER,
        initialised_by TEXT NOT NULL,
        initialised_at TEXT NOT NULL
    );
    """,
    # 3: the pid each scan was registered with in the catalog (reused forever), seeded from the
    # register events that recorded it
    """
    CREATE TABLE catalog_pids(
        scan TEXT PRIMARY KEY,
        pid TEXT NOT NULL,
        pid_prefix TEXT,
        beamline TEXT,
        creation_location TEXT,
        recorded_at TEXT NOT NULL
    );
    INSERT OR IGNORE INTO catalog_pids(scan, pid, recorded_at)
        SELECT scan, json_extract(data, '$.pid'), at FROM events
        WHERE kind = 'catalog.register' AND scan IS NOT NULL
          AND json_valid(data) AND json_extract(data, '$.pid') IS NOT NULL
        ORDER BY seq;
    """,
    # 4: evidence belongs to a storage identity (engine/evidence_identity.py)
    """
    ALTER TABLE evidence ADD COLUMN identity TEXT;
    ALTER TABLE tasks ADD COLUMN target_identity TEXT;
    CREATE TABLE endpoint_storage(
        endpoint TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        since TEXT NOT NULL
    );
    """,
    # 5: operator decisions as an append-only log whose approvals are spent by the submission
    # that used them (engine/decisions.py), `approvals` now the view of the decisions in force;
    # receipts append-only, one row per removal (keyed by their own id and the submission).
    # An approval a recorded task carried after it was given counts as spent by the latest.
    """
    CREATE TABLE decisions(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        superseded INTEGER NOT NULL DEFAULT 0,
        spent_by TEXT,
        spent_at TEXT
    );
    CREATE INDEX decisions_action ON decisions(action_id);
    CREATE INDEX decisions_spent ON decisions(spent_by) WHERE spent_by IS NOT NULL;
    CREATE INDEX decisions_standing ON decisions(action_id)
        WHERE superseded = 0 AND spent_by IS NULL;
    INSERT INTO decisions(action_id, decision, decided_by, decided_at, note, spent_by, spent_at)
    SELECT action_id, decision, decided_by, decided_at, note,
           CASE WHEN decision = 'approve' THEN (
               SELECT t.submission_id FROM task_items i
               JOIN tasks t ON t.submission_id = i.submission_id
               WHERE i.action_id = ap.action_id AND t.created_at >= ap.decided_at
               ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1) END,
           CASE WHEN decision = 'approve' THEN (
               SELECT t.created_at FROM task_items i
               JOIN tasks t ON t.submission_id = i.submission_id
               WHERE i.action_id = ap.action_id AND t.created_at >= ap.decided_at
               ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1) END
    FROM approvals ap ORDER BY decided_at;
    DROP TABLE approvals;
    CREATE VIEW approvals AS
        SELECT action_id, decision, decided_by, decided_at, note, seq, spent_by, spent_at
        FROM decisions WHERE superseded = 0 AND spent_by IS NULL
        UNION ALL
        SELECT d.action_id, d.decision, d.decided_by, d.decided_at, d.note, d.seq, d.spent_by,
               d.spent_at
        FROM tasks t
        JOIN decisions d ON d.spent_by = t.submission_id AND d.superseded = 0
        JOIN actions a ON a.id = d.action_id AND a.submission_id = t.submission_id
                      AND a.status = 'submitted'
        WHERE t.status IN ('preparing', 'active');
    CREATE TABLE receipts(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        action_id TEXT NOT NULL,
        task_id TEXT,
        submission_id TEXT,
        deleted_at TEXT NOT NULL,
        receipt TEXT NOT NULL
    );
    INSERT INTO receipts(scan, endpoint, action_id, task_id, submission_id, deleted_at, receipt)
    SELECT d.scan, d.endpoint, d.action_id, d.task_id,
           (SELECT t.submission_id FROM tasks t WHERE t.task_id = d.task_id LIMIT 1),
           d.deleted_at, d.receipt
    FROM deletions d ORDER BY d.deleted_at, d.scan, d.endpoint;
    DROP TABLE deletions;
    ALTER TABLE receipts RENAME TO deletions;
    CREATE INDEX deletions_scan ON deletions(scan, endpoint);
    CREATE INDEX deletions_submission ON deletions(submission_id, action_id);
    """,
    # 6: the local catalog's identity; which scans each catalog registered (from past events:
    # catalog '' stands for "the catalog configured then", claimed by the first pass)
    """
    CREATE TABLE catalog_identity(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        catalog_id TEXT NOT NULL,
        path TEXT NOT NULL,
        initialised_by TEXT NOT NULL,
        initialised_at TEXT NOT NULL
    );
    CREATE TABLE catalog_registrations(
        catalog TEXT NOT NULL,
        scan TEXT NOT NULL,
        pid TEXT,
        registered_at TEXT NOT NULL,
        PRIMARY KEY(catalog, scan)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO catalog_registrations(catalog, scan, registered_at)
        SELECT '', scan, MIN(at) FROM events
        WHERE kind = 'catalog.register' AND scan IS NOT NULL
        GROUP BY scan;
    """,
    # 7: what each pass held back and why, the catalog as last read (engine.pass_findings);
    # per-scan progress of a task, from the mover's per-file records (engine.task_progress)
    """
    CREATE TABLE blocked(
        scan TEXT NOT NULL,
        kind TEXT NOT NULL,
        endpoint TEXT NOT NULL DEFAULT '',
        reason_code TEXT NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY(scan, kind, endpoint, reason_code)
    ) WITHOUT ROWID;
    CREATE TABLE catalog_entries(
        scan TEXT PRIMARY KEY,
        locations TEXT NOT NULL,
        seen_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE catalog_status(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        read_at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        last_ok_at TEXT
    );
    ALTER TABLE task_items ADD COLUMN files_done INTEGER;
    ALTER TABLE task_items ADD COLUMN bytes_done INTEGER;
    ALTER TABLE heartbeat ADD COLUMN stopped_at TEXT;
    """,
    # 8: what the reconciler watches on each open remote task (engine.task_watch): a fault
    # the task keeps retrying and since when, when it last made progress, and why bl931
    # cancelled it
    """
    CREATE TABLE task_watch(
        submission_id TEXT PRIMARY KEY,
        fault TEXT,
        fault_class TEXT,
        fault_message TEXT,
        fault_since TEXT,
        progress_at TEXT NOT NULL,
        files_done INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        cancelled_at TEXT,
        cancel_reason TEXT,
        cancel_class TEXT
    ) WITHOUT ROWID;
    """,
    # 9: the version of each scan as a task carried it (engine.submitted): an interrupted delete
    # or replace is settled and receipted for what was submitted, not the scan's current record
    """
    ALTER TABLE task_items ADD COLUMN submitted TEXT;
    """,
    # 10: the waits Globus asked for with Retry-After (engine.retry_holds), kept so that a new
    # process (`--reconcile --once`, a restart) honours them too
    """
    CREATE TABLE retry_holds(
        key TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        until TEXT NOT NULL,
        what TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 11: flight checks (engine.flight_record): each
    # check's report, the latest of which decides the `flight_check_failed` alerts
    """
    CREATE TABLE flight_checks(
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        report TEXT NOT NULL
    );
    """,
    # 12: tape bundles (engine/storage/tape.py): each bundle's deterministic name, job name and
    # job id (persisted before and right after submitting), state and manifest; the scans each
    # verified bundle holds (the evidence's detail); when a scan began waiting for its bundle;
    # and operators' restore requests.
    """
    CREATE TABLE tape_bundles(
        endpoint TEXT NOT NULL,
        bundle TEXT NOT NULL,
        grp TEXT NOT NULL,
        part INTEGER NOT NULL,
        submission_id TEXT NOT NULL,
        job_name TEXT NOT NULL,
        job_id TEXT,
        purpose TEXT NOT NULL DEFAULT 'archive',
        state TEXT NOT NULL,
        error TEXT,
        archive_size INTEGER,
        manifest TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        PRIMARY KEY(endpoint, bundle)
    ) WITHOUT ROWID;
    CREATE INDEX tape_bundles_submission ON tape_bundles(submission_id);
    CREATE TABLE tape_members(
        endpoint TEXT NOT NULL,
        scan TEXT NOT NULL,
        bundle TEXT NOT NULL,
        checksum TEXT NOT NULL,
        evidence TEXT NOT NULL,
        PRIMARY KEY(endpoint, scan, bundle)
    ) WITHOUT ROWID;
    CREATE TABLE tape_waits(
        endpoint TEXT NOT NULL,
        scan TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY(endpoint, scan)
    ) WITHOUT ROWID;
    CREATE TABLE tape_restores(
        scan TEXT NOT NULL,
        target TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        PRIMARY KEY(scan, target)
    ) WITHOUT ROWID;
    """,
    # 13: what the acquisition watcher said about a scan (engine.scan_hints): that it is
    # complete (the listing signature then) and whether it is export-controlled (sticky)
    """
    CREATE TABLE scan_hints(
        scan TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        export_controlled INTEGER NOT NULL,
        signature TEXT,
        notified_at TEXT NOT NULL,
        notified_by TEXT NOT NULL,
        via TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 14: the pid each registration answered, kept in its row (engine.receipts reads it there,
    # never from events): filled in for the registrations recorded before the pid was, from
    # their latest register event
    """
    UPDATE catalog_registrations SET pid = (
        SELECT json_extract(e.data, '$.pid') FROM events e
        WHERE e.kind = 'catalog.register' AND e.scan = catalog_registrations.scan
          AND json_valid(e.data) AND json_extract(e.data, '$.pid') IS NOT NULL
        ORDER BY e.seq DESC LIMIT 1
    ) WHERE pid IS NULL;
    """,
    # 15: since when a remote task has been seen INACTIVE (engine/storage/globus_inactive.py),
    # so the grace before it is given up survives a restart and `--once` passes; tasks are
    # looked up by the mover's task id
    """
    ALTER TABLE tasks ADD COLUMN inactive_since TEXT;
    CREATE INDEX tasks_task_id ON tasks(task_id);
    """,
    # 16: a change mark per scan for the TUI's incremental read model (engine/store/changes.py):
    # every write to a column a scan's row is derived from moves that scan's `seq` past every
    # other, by trigger, so no writer can forget it; the epoch tells one store from another
    # (a backup copy gets its own); registrations indexed by when they succeeded
    _CHANGE_MARKS,
    # 17: the registrations bl931 asked a catalog for, written before the catalog is called
    # (engine/catalog/custody.py): a document the catalog holds for one of them is adopted into
    # catalog_registrations, also when the process died (or the write failed) before recording
    # it; filled in from the register actions that failed (for the catalog configured at the
    # first pass after the upgrade, as migration 6's registrations)
    """
    CREATE TABLE catalog_attempts(
        catalog TEXT NOT NULL,
        scan TEXT NOT NULL,
        attempted_at TEXT NOT NULL,
        PRIMARY KEY(catalog, scan)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO catalog_attempts(catalog, scan, attempted_at)
        SELECT '', scan, MIN(updated_at) FROM actions
        WHERE kind = 'register' AND status = 'failed'
        GROUP BY scan;
    """,
    # 18: the scans a standing `catalog_lost_documents` alert names (engine/catalog/lost_named.py):
    # an operator's acknowledgement accepts the loss of those, never of documents lost since
    """
    CREATE TABLE catalog_lost_named(
        catalog TEXT NOT NULL,
        scan TEXT NOT NULL,
        PRIMARY KEY(catalog, scan)
    ) WITHOUT ROWID;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
