/*
 * daemon.h - `inboxprobe daemon` (docs/SPEC.md "Daemon"): rounds on a schedule,
 * /metrics over HTTP, SIGHUP reload, systemd notification.
 *
 * - Rounds start every schedule.interval seconds, each start spread by a
 *   random 0..schedule.jitter seconds. They never overlap: a start that
 *   falls while a round is still running is skipped and counted in
 *   inboxprobe_rounds_skipped_total. Each round goes through the same path
 *   as `inboxprobe run` (scheduler/cycle.h): state store, report files.
 * - A state store is required; the run lock beside it is held for the
 *   daemon's life, so a `run` of the same configuration sends nothing.
 * - SIGHUP reloads the configuration between rounds; a broken file is
 *   refused with its errors logged and the old one kept.
 * - SIGTERM / SIGINT stop the daemon: a round in flight stops as `run`
 *   stops (what was measured is recorded and reported), then it exits 0.
 *   A second signal ends the process at once.
 * - systemd Type=notify: READY=1 once the configuration is loaded and the
 *   listener is up; STATUS= after each round; WATCHDOG=1 every half of
 *   WATCHDOG_USEC while the main loop is alive.
 *
 * Seeds' IMAP sessions are kept logged in between rounds (scheduler/pool.h):
 * a round takes them (NOOP proves them alive) instead of logging in again.
 * Between rounds scheduler/keeper.h holds them in IDLE: a pending probe that
 * lands is recorded at once (state store, /metrics, report files written
 * again), IDLE is renewed, a dropped session is reopened with backoff and
 * OAuth tokens are refreshed. After a round, the kept SMTP connections are
 * closed when the next round starts beyond CURLOPT_MAXAGE_CONN (118 s).
 */
#ifndef INBOXPROBE_DAEMON_H
#define INBOXPROBE_DAEMON_H

/* Run the daemon for the configuration at path until SIGTERM or SIGINT.
 * Returns the exit code: 0 after a signalled stop; 2 (EXIT_USAGE) for a
 * configuration error at start, including no state store; 3 (EXIT_UNKNOWN)
 * when another run or daemon holds the run lock, the state store cannot be
 * opened or the listener cannot be set up. Messages go to stderr. */
int daemon_main(const char *path);

#endif
