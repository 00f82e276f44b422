package postgres

import "fmt"

// psqlScript runs psql with the container's own settings and secrets. It
// maps the password variables of the common images onto libpq's, so
// credentials never leave the pod, and takes everything else as
// positional parameters: the SQL is never pasted into the shell.
//
// PGUSER: PGUSER, Spilo's PGUSER_SUPERUSER, the official image's
// POSTGRES_USER, else postgres. PGPASSWORD: PGPASSWORD, Spilo's
// PGPASSWORD_SUPERUSER, Bitnami's POSTGRESQL_POSTGRES_PASSWORD or
// POSTGRESQL_PASSWORD, the official image's POSTGRES_PASSWORD.
const psqlScript = `: "${PGUSER:=${PGUSER_SUPERUSER:-${POSTGRES_USER:-postgres}}}"
: "${PGPASSWORD:=${PGPASSWORD_SUPERUSER:-${POSTGRESQL_POSTGRES_PASSWORD:-${POSTGRESQL_PASSWORD:-${POSTGRES_PASSWORD:-}}}}}"
: "${PGDATABASE:=postgres}"
: "${PGCONNECT_TIMEOUT:=5}"
: "${PGAPPNAME:=kubectl-sts}"
export PGUSER PGDATABASE PGCONNECT_TIMEOUT PGAPPNAME
if [ -n "$PGPASSWORD" ]; then export PGPASSWORD; else unset PGPASSWORD; fi
exec psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"`

// psqlCommand is the exec command that runs one SQL string.
func psqlCommand(sql string) []string {
	return []string{"sh", "-c", psqlScript, "psql", "-c", sql}
}

// membersSQL reads one server's whole replication view as one JSON value:
// its role and positions, and, where it has them, the replicas streaming
// from it (pg_stat_replication), its slots (pg_replication_slots, with the
// WAL each retains) and its own WAL receiver. PostgreSQL 10 or later.
//
// replayDelay is zero when the replica replayed everything it received:
// after a restart the receive position restarts at the start of a WAL
// segment, below the replay position, so "received = replayed" would
// miss a caught-up replica. replayAge is the raw time since the last
// replayed commit, which grows forever on an idle primary; assemble
// uses it only when the primary has WAL the replica has not replayed.
const membersSQL = `WITH pos AS (
  SELECT pg_is_in_recovery() AS recovery,
         CASE WHEN pg_is_in_recovery()
              THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
              ELSE pg_current_wal_lsn() END AS lsn
)
SELECT json_build_object(
  'recovery', pos.recovery,
  'version', current_setting('server_version_num')::int,
  'lsn', pos.lsn,
  'receiveLsn', CASE WHEN pos.recovery THEN pg_last_wal_receive_lsn() END,
  'replayLsn', CASE WHEN pos.recovery THEN pg_last_wal_replay_lsn() END,
  'replayDelay', CASE WHEN pos.recovery THEN
      CASE WHEN pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() THEN 0
           ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END END,
  'replayAge', CASE WHEN pos.recovery THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,
  'replayPaused', CASE WHEN pos.recovery THEN pg_is_wal_replay_paused() END,
  'receiver', (SELECT json_build_object('status', w.status, 'slotName', w.slot_name,
      'senderHost', to_jsonb(w)->>'sender_host', 'senderPort', to_jsonb(w)->>'sender_port')
      FROM pg_stat_wal_receiver w),
  'replication', (SELECT coalesce(json_agg(json_build_object(
      'pid', r.pid, 'applicationName', r.application_name, 'clientAddr', host(r.client_addr),
      'state', r.state, 'sentLsn', r.sent_lsn, 'writeLsn', r.write_lsn, 'flushLsn', r.flush_lsn,
      'replayLsn', r.replay_lsn, 'writeLag', extract(epoch FROM r.write_lag),
      'flushLag', extract(epoch FROM r.flush_lag), 'replayLag', extract(epoch FROM r.replay_lag),
      'syncState', r.sync_state, 'lagBytes', pg_wal_lsn_diff(pos.lsn, r.replay_lsn))
      ORDER BY r.application_name, r.pid), '[]'::json) FROM pg_stat_replication r),
  'slots', (SELECT coalesce(json_agg(json_build_object(
      'name', s.slot_name, 'type', s.slot_type, 'active', s.active, 'activePid', s.active_pid,
      'restartLsn', s.restart_lsn, 'walStatus', to_jsonb(s)->>'wal_status',
      'retainedBytes', pg_wal_lsn_diff(pos.lsn, s.restart_lsn))
      ORDER BY s.slot_name), '[]'::json) FROM pg_replication_slots s)
) FROM pos`

// dropSlotSQL drops the slot only while it is inactive and prints how
// many slots it dropped (0 or 1). The name must have passed
// ValidateSlotName; it is quoted all the same.
func dropSlotSQL(name string) string {
	return fmt.Sprintf(`SELECT count(*) FROM (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s AND NOT active) dropped`, QuoteLiteral(name))
}

// slotStateSQL prints the slot's state as JSON ({"exists":false} when gone).
func slotStateSQL(name string) string {
	return fmt.Sprintf(`SELECT json_build_object('exists', count(*) > 0, 'active', coalesce(bool_or(active), false), 'activePid', max(active_pid)) FROM pg_replication_slots WHERE slot_name = %s`, QuoteLiteral(name))
}
