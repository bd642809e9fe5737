/*
 * runlock.h - the run lock: one active run per configuration (docs/SPEC.md
 * "Command line": a run and a daemon on the same configuration exclude
 * each other), shared by every user who runs that configuration.
 *
 * Where it lives comes from the configuration alone, never from the
 * environment (see main.c and docs/state.md "Run lock"): STATE.NAME.lock
 * beside the state store, or NAME.lock in the configured lock_dir, or in
 * the per-system directory INBOXPROBE_LOCKDIR (configure --with-lockdir,
 * default /run/inboxprobe).
 */
#ifndef INBOXPROBE_RUNLOCK_H
#define INBOXPROBE_RUNLOCK_H

/* How far a lock directory is trusted (run_lock_dir_check). */
enum run_lock_dir_kind {
	RUN_LOCK_DIR_CONFIGURED,   /* named by the configuration (store's directory, lock_dir) */
	RUN_LOCK_DIR_SYSTEM        /* the fixed per-system directory */
};

/*
 * Check the directory a run lock goes in before the lock file is opened.
 * Any kind: it must be a directory that not every user may write to (no
 * write bit for others): in a world-writable directory such as /tmp any
 * local user could take or plant the lock. RUN_LOCK_DIR_SYSTEM also: it is
 * created when missing (mode 01770: the owner and the group of the users
 * who run inboxprobe, sticky so that none removes another's lock file); it
 * must not be a symbolic link and must be owned by root or by the
 * effective user. Returns 0, or -1 with *errstr (heap) naming the
 * directory, the problem and the fix.
 */
int run_lock_dir_check(const char *dir, enum run_lock_dir_kind kind, char **errstr);

/*
 * Take the run lock at lockpath: flock(2) LOCK_EX|LOCK_NB, held until
 * run_lock_release(). The file is opened with O_NOFOLLOW and O_NONBLOCK
 * and must be a regular file with one link: a symbolic link, a FIFO, a
 * device or a hard link planted there is refused, never followed, opened
 * for writing or truncated. A new file is created mode 0660 less the
 * umask, close-on-exec; a file of another user that we may only read is
 * locked read-only (flock needs no write access; the pid is then not
 * written). The holder writes "PID STARTED" (RFC 3339 UTC) into it; the
 * file is never unlinked.
 * Returns 0 when acquired, 1 when another run holds it (nothing to do;
 * *errstr says "another inboxprobe run holds LOCKPATH (pid N)", the pid
 * from /proc/locks; when /proc/locks cannot tell (unreadable under
 * systemd's ProcSubset=pid, or the holder in another PID namespace) the
 * pid and start time the file holds, when that pid is running, saying
 * where they come from; else that the pid is unknown, why, and how to find
 * the holder), -1 on error (*errstr). Release with run_lock_release()
 * (NULL allowed).
 */
struct run_lock;
int run_lock_acquire(const char *lockpath, struct run_lock **out, char **errstr);
void run_lock_release(struct run_lock *l);

#endif
