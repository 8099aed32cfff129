/*
 * shutdown.c — how finbert's background workers end on SIGTERM.
 *
 * Both workers (worker.c, and the cache writer in cache.c) take SIGTERM
 * with SignalHandlerForShutdownRequest: it only sets ShutdownRequestPending,
 * so a worker finishes or abandons its work cleanly and leaves its loop,
 * and no "terminating background worker ... due to administrator command"
 * FATAL is ever logged.  It then has to choose its exit code, and the
 * signal alone does not say why it came:
 *
 *  - the server is shutting down (pg_ctl stop -m smart or fast): exit 0 and
 *    say nothing, as PostgreSQL's own processes do;
 *  - anything else (pg_terminate_backend, kill): exit 1 with a LOG line, so
 *    that the postmaster restarts the finbert worker (exit code 0 would
 *    unregister it for good).
 *
 * The postmaster tells: on a shutdown request it writes "stopping" into
 * the status line of postmaster.pid (LOCK_FILE_LINE_PM_STATUS) before it
 * signals any child (PostgreSQL 15, postmaster.c: pmdie() calls
 * AddToDataDirLockFile(LOCK_FILE_LINE_PM_STATUS, PM_STATUS_STOPPING), then
 * PostmasterStateMachine(), which sends SIGTERM in PM_STOP_BACKENDS; the
 * same order for smart, fast and immediate shutdown), and it rewrites the
 * file with one write() of same-length status strings, so a reader sees
 * the old or the new line, never a torn one.  A worker reads the file
 * after the signal, so a shutdown's SIGTERM always finds "stopping": no
 * race.  The remaining window is the other way round: a stray SIGTERM
 * that arrives while a smart shutdown is already waiting for clients to
 * disconnect also finds "stopping", and that worker is then not restarted
 * for the rest of the shutdown (sessions still running in worker mode get
 * "finbert worker is not running" after finbert.worker_timeout).  An
 * unreadable file counts as "not stopping": exit 1, whose only cost during
 * a shutdown is the postmaster's LOG line about the exit code.
 *
 * A bottom layer (finbert_pg.h): calls no other file of src/pg.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/pidfile.h"

#include "finbert_pg.h"

/* The data directory lock file (miscinit.c does not export its name). */
#define PM_LOCK_FILE	"postmaster.pid"

bool
FinbertServerStopping(void)
{
	char		buf[1024 + 1];
	char	   *line = buf;
	ssize_t		n;
	int			fd;

	/* background workers run in the data directory */
	fd = open(PM_LOCK_FILE, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		return false;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (int i = 1; i < LOCK_FILE_LINE_PM_STATUS; i++)
	{
		line = strchr(line, '\n');
		if (line == NULL)
			return false;
		line++;
	}
	return strncmp(line, PM_STATUS_STOPPING, strlen(PM_STATUS_STOPPING)) == 0;
}

void
FinbertExitAfterShutdownRequest(const char *what, const char *restart)
{
	if (FinbertServerStopping())
		proc_exit(0);
	ereport(LOG,
			(errmsg("%s stopping on SIGTERM while the server keeps running", what),
			 errdetail("%s", restart)));
	proc_exit(1);
}
