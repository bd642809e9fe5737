/* runlock.c - the run lock (see runlock.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "scheduler/runlock.h"

struct run_lock {
	int fd;
	char *path;
};

/* Create the per-system directory dir (mode 01770, set explicitly: the
 * umask would clear the group bits). EEXIST is fine: another run won. */
static int system_dir_create(const char *dir, char **errstr)
{
	if (mkdir(dir, 0700) != 0) {
		if (errno == EEXIST)
			return 0;
		*errstr = xasprintf("run lock directory %s: cannot create it: %s; create it as root "
		                    "(mode 1770, group of the users who run inboxprobe) or configure "
		                    "a state store (the lock then goes beside it)", dir, strerror(errno));
		return -1;
	}
	if (chmod(dir, 01770) != 0) {
		*errstr = xasprintf("run lock directory %s: chmod: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int run_lock_dir_check(const char *dir, enum run_lock_dir_kind kind, char **errstr)
{
	struct stat st;
	int sys = kind == RUN_LOCK_DIR_SYSTEM;

	if (sys && lstat(dir, &st) != 0 && errno == ENOENT && system_dir_create(dir, errstr) != 0)
		return -1;
	if ((sys ? lstat(dir, &st) : stat(dir, &st)) != 0) {
		*errstr = xasprintf("run lock directory %s: %s%s", dir, strerror(errno),
		                    !sys && errno == ENOENT ? " (the directory of state.path, or "
		                    "lock_dir: create it)" : "");
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*errstr = xasprintf("run lock directory %s: is %s, not a directory%s", dir,
		                    file_type_name(st.st_mode),
		                    S_ISLNK(st.st_mode) ? " (a symbolic link is not followed here)" : "");
		return -1;
	}
	if (sys && st.st_uid != 0 && st.st_uid != geteuid()) {
		*errstr = xasprintf("run lock directory %s: owned by uid %u, neither root nor us "
		                    "(uid %u): refusing to use it", dir, (unsigned)st.st_uid,
		                    (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & S_IWOTH) {
		*errstr = xasprintf("run lock directory %s: writable by every user (mode %04o), so "
		                    "anyone could take or plant the lock; %s", dir,
		                    (unsigned)(st.st_mode & 07777),
		                    sys ? "chmod o-w it" :
		                    "put the state store (or lock_dir) in a directory of its own");
		return -1;
	}
	return 0;
}

/* The pid holding an flock(2) on the file of fd, from /proc/locks
 * ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": major and minor in
 * hex, inode in decimal). Returns the pid, 0 when not listed (a holder in
 * another PID namespace is listed with pid 0, or not at all), or -1 when
 * /proc/locks cannot be read (systemd's ProcSubset=pid hides it). */
static long holder_from_proc(int fd)
{
	struct stat st;
	char line[256];
	long pid = 0;
	FILE *f;

	if (fstat(fd, &st) != 0)
		return 0;
	if ((f = fopen("/proc/locks", "re")) == NULL)
		return -1;
	while (pid == 0 && fgets(line, sizeof line, f) != NULL) {
		char type[16], kind[16], mode[16];
		unsigned maj, min;
		unsigned long long ino;
		long p;
		if (sscanf(line, "%*[^:]: %15s %15s %15s %ld %x:%x:%llu", type, kind, mode, &p,
		           &maj, &min, &ino) == 7 &&
		    strcmp(type, "FLOCK") == 0 && maj == major(st.st_dev) &&
		    min == minor(st.st_dev) && ino == (unsigned long long)st.st_ino && p > 0)
			pid = p;
	}
	fclose(f);
	return pid;
}

/* What the holder wrote into the file (run_lock_acquire: "PID STARTED\n",
 * STARTED an RFC 3339 UTC time): the pid (0 when none) and, in since
 * (sincesz bytes), the start time or "". */
static long holder_from_file(int fd, char *since, size_t sincesz)
{
	char buf[64];
	ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long pid;

	since[0] = '\0';
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || pid <= 0)
		return 0;
	if (*end == ' ') {
		size_t n = strspn(end + 1, "0123456789-:TZ");
		if (n > 0 && n < sincesz) {
			memcpy(since, end + 1, n);
			since[n] = '\0';
		}
	}
	return pid;
}

/* The "held" message: the holder's pid from /proc/locks, else from the
 * file (checked with kill(pid, 0): a pid that is not running is stale),
 * else how to find it. Heap string. */
static char *held_message(const char *lockpath, int fd)
{
	long proc = holder_from_proc(fd), pid;
	const char *why = proc < 0 ?
	                  "/proc/locks is not readable here (systemd's ProcSubset=pid hides it)" :
	                  "/proc/locks does not list the holder (hidden, or in another PID namespace)";
	char since[32];

	if (proc > 0)
		return xasprintf("another inboxprobe run holds %s (pid %ld)", lockpath, proc);
	pid = holder_from_file(fd, since, sizeof since);
	if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		return xasprintf("another inboxprobe run holds %s (pid %ld%s%s, as the lock file "
		                 "says; %s)", lockpath, pid, since[0] ? ", started " : "", since, why);
	if (pid > 0)
		return xasprintf("another inboxprobe run holds %s (its pid is unknown: %s, and the "
		                 "lock file names pid %ld, which is not running here; `fuser -v %s` "
		                 "as root shows the holder)", lockpath, why, pid, lockpath);
	return xasprintf("another inboxprobe run holds %s (its pid is unknown: %s, and the "
	                 "holder could not write its pid into the lock file; `fuser -v %s` as "
	                 "root shows the holder)", lockpath, why, lockpath);
}

/* Open lockpath without following a symbolic link or blocking on a FIFO;
 * read-only when we may not write a file someone else created. Returns
 * the fd of a regular file with one link, or -1 with *errstr. */
static int lock_open(const char *lockpath, int *writable, char **errstr)
{
	const int fl = O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK;
	struct stat st;
	int fd;

	*writable = 1;
	fd = open(lockpath, O_RDWR | O_CREAT | fl, 0660);
	if (fd < 0 && errno == EACCES) {
		*writable = 0;
		fd = open(lockpath, O_RDONLY | fl);
	}
	if (fd < 0) {
		if (errno == ELOOP)
			*errstr = xasprintf("run lock %s: is a symbolic link: refusing to follow it", lockpath);
		else
			*errstr = xasprintf("run lock %s: %s", lockpath, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		*errstr = xasprintf("run lock %s: %s", lockpath, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		*errstr = xasprintf("run lock %s: is %s, not a regular file: refusing to use it",
		                    lockpath, file_type_name(st.st_mode));
	} else if (st.st_nlink != 1) {
		*errstr = xasprintf("run lock %s: has %lu hard links, so it is another file too: "
		                    "refusing to use it", lockpath, (unsigned long)st.st_nlink);
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

int run_lock_acquire(const char *lockpath, struct run_lock **out, char **errstr)
{
	struct run_lock *l;
	char buf[64];
	int fd, len, writable;

	*out = NULL;
	if (lockpath == NULL || *lockpath == '\0') {
		*errstr = xstrdup("run lock: empty path");
		return -1;
	}
	fd = lock_open(lockpath, &writable, errstr);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		if (e == EWOULDBLOCK) {
			*errstr = held_message(lockpath, fd);
			close(fd);
			return 1;
		}
		*errstr = xasprintf("run lock %s: flock: %s", lockpath, strerror(e));
		close(fd);
		return -1;
	}
	/* Ours: record the pid and start time for the message the next run
	 * prints when /proc/locks cannot tell (ProcSubset=pid). */
	{
		time_t now = time(NULL);
		struct tm tm;
		char when[24] = "";

		if (gmtime_r(&now, &tm) != NULL)
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		len = snprintf(buf, sizeof(buf), "%ld %s\n", (long)getpid(), when);
	}
	if (writable && (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len))
		log_warn("run lock %s: cannot write the pid: %s", lockpath, strerror(errno));
	l = xcalloc(1, sizeof(*l));
	l->fd = fd;
	l->path = xstrdup(lockpath);
	*out = l;
	return 0;
}

void run_lock_release(struct run_lock *l)
{
	if (l == NULL)
		return;
	/* The file stays: unlinking it would let a third run lock a new inode
	 * while a second still waits on the old one. */
	if (ftruncate(l->fd, 0) != 0) {
		/* read-only or failed: the lock itself goes away with close */
	}
	flock(l->fd, LOCK_UN);
	close(l->fd);
	free(l->path);
	free(l);
}
