/*
 * host.c — the background worker's side of the engine host process.
 *
 * A CUDA context must never live in a process the postmaster started: if
 * a driver fault or a bad kernel kills it, the postmaster takes the death
 * of its child as a crash and restarts the whole cluster.  So the worker
 * runs the engine in a process of its own (finbert-host, src/host/, no
 * PostgreSQL code), started here with fork + exec and spoken to over a
 * socketpair in the frames of host_proto.h.  The host is the worker's
 * child, not the postmaster's: when it dies the worker reaps it, the
 * requests of the batch get ERROR FINBERT_HOST_ERRCODE ("finbert engine
 * host died and was restarted") and a new host is started at once; the
 * database never goes into crash recovery.
 *
 * Never a hang: every read polls in ticks of HOST_TICK_MS, checks the
 * caller's interrupt callback (SIGTERM, postmaster death, every requester
 * gone: SIGUSR1 asks the host to stop the batch, and after
 * HOST_STOP_GRACE_MS it is killed) and finbert.host_timeout.  A
 * reply that does not parse is treated as a dead host.
 *
 * Only the worker calls this file (one host per worker, one request at a
 * time).  Layer L1 (finbert_pg.h): it calls errors.c, guc.c and device.c.
 */
#include "postgres.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/timestamp.h"

#include "finbert_pg.h"
#include "host_proto.h"

#define HOST_TICK_MS		100
#define HOST_STOP_GRACE_MS	2000
#define HOST_REAP_MS		5000
#define HOST_PROGRAM		"finbert-host"
#define HOST_MAX_ZOMBIES	16

static pid_t HostPid = 0;
static int	HostFd = -1;
static uint64 HostGeneration = 0;	/* hosts started by this worker */
static uint64 HostFailureCount = 0;
static uint32 NextModelId = 1;
static uint64 HostDeviceUsed = 0;	/* device memory, as of the last run */
static pid_t Unreaped[HOST_MAX_ZOMBIES];	/* killed, not yet reaped */

/* ------------------------------------------------------------------------
 * Process
 * ------------------------------------------------------------------------ */
static void
HostProgram(char *path)
{
	snprintf(path, MAXPGPATH, "%s/%s", pkglib_path, HOST_PROGRAM);
}

/* Reaps killed hosts that have exited meanwhile (no zombies left behind). */
static void
ReapUnreaped(void)
{
	for (int i = 0; i < HOST_MAX_ZOMBIES; i++)
		if (Unreaped[i] > 0 && waitpid(Unreaped[i], NULL, WNOHANG) != 0)
			Unreaped[i] = 0;
}

/*
 * Waits up to ms for pid to exit; returns its wait status, or -1 (the pid
 * is then kept to be reaped later) when it has not.
 */
static int
Reap(pid_t pid, int ms)
{
	int			status;

	for (int waited = 0;; waited += 10)
	{
		pid_t		r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return 0;			/* not our child any more: nothing to reap */
		if (waited >= ms)
			break;
		pg_usleep(10 * 1000L);
	}
	for (int i = 0; i < HOST_MAX_ZOMBIES; i++)
		if (Unreaped[i] == 0)
		{
			Unreaped[i] = pid;
			break;
		}
	return -1;
}

int
FinbertHostPid(void)
{
	return (int) HostPid;
}

uint64
FinbertHostGeneration(void)
{
	return HostGeneration;
}

uint64
FinbertHostFailures(void)
{
	return HostFailureCount;
}

/* Device memory in use in the host, as its last run answer said. */
uint64
FinbertHostDeviceUsed(void)
{
	return HostDeviceUsed;
}

/*
 * Reaps a host that died while idle (between batches) and starts a new one
 * quietly but for a LOG line: no request was running on it.
 */
void
FinbertHostCheck(void)
{
	int			status;

	if (HostPid == 0 || waitpid(HostPid, &status, WNOHANG) != HostPid)
		return;
	ereport(LOG,
			(errmsg("finbert engine host (PID %d) died while idle (%s); starting a new one",
					(int) HostPid, wait_result_to_str(status))));
	close(HostFd);
	HostFd = -1;
	HostPid = 0;
	FinbertDeviceHostFailed();
	FinbertDeviceHostStarted(0);
	FinbertHostStart();
}

/* Starts the engine host if none runs (ERROR when it cannot). */
void
FinbertHostStart(void)
{
	char		path[MAXPGPATH];
	int			sv[2];
	pid_t		pid;
	sigset_t	usr1,
				old_mask;

	if (HostPid != 0)
		return;
	ReapUnreaped();
	HostProgram(path);
	if (access(path, X_OK) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("finbert engine host program \"%s\" is missing", path),
				 errhint("Install finbert with \"make install\", which puts %s next to finbert.so.",
						 HOST_PROGRAM)));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("could not create the socket of the finbert engine host: %m")));
	/* the host unblocks SIGUSR1 (stop the batch) once it handles it */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old_mask);
	pid = fork();
	if (pid == 0)
	{
		/* child: async-signal-safe calls only, until exec */
		if (sv[1] == FB_HOST_FD)
			(void) fcntl(sv[1], F_SETFD, 0);
		else if (dup2(sv[1], FB_HOST_FD) < 0)
			_exit(127);
		/* no descriptor of the worker but stdin/out/err (the log) and ours */
		if (close_range(FB_HOST_FD + 1, ~0U, 0) != 0)
			for (int fd = FB_HOST_FD + 1; fd < 1024; fd++)
				(void) close(fd);
		/*
		 * A process group of its own: the postmaster signals each child's
		 * group (a backend's SIGTERM, SIGQUIT), and the host must end by
		 * the worker's hand (EOF) or with it (PR_SET_PDEATHSIG), never
		 * by a signal meant for the worker.
		 */
		(void) setsid();
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(path, FB_HOST_TITLE, (char *) NULL);
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	close(sv[1]);
	if (pid < 0)
	{
		close(sv[0]);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the finbert engine host: %m")));
	}
	HostPid = pid;
	HostFd = sv[0];
	HostGeneration++;
	FinbertDeviceHostStarted((int) pid);
	ereport(LOG,
			(errmsg("finbert engine host started (PID %d)", (int) pid)));
}

/*
 * Stops the host: EOF on its socket ends it; killed if it has not exited
 * within the grace period (kill: at once).  Never raises an error.
 */
void
FinbertHostStop(bool kill_now)
{
	pid_t		pid = HostPid;

	if (pid == 0)
		return;
	if (kill_now)
		(void) kill(pid, SIGKILL);
	close(HostFd);
	HostFd = -1;
	HostPid = 0;
	FinbertDeviceHostStarted(0);
	if (Reap(pid, HOST_REAP_MS) < 0 && !kill_now)
	{
		(void) kill(pid, SIGKILL);
		(void) Reap(pid, HOST_REAP_MS);
	}
}

/*
 * The host failed (died, timed out, sent garbage, or reported a device
 * error): kill and reap it, log why, start a new one, and raise the error
 * of the batch (always FINBERT_HOST_ERRCODE).
 */
static void
HostFailed(const char *why, const char *device_error) pg_attribute_noreturn();

static void
HostFailed(const char *why, const char *device_error)
{
	pid_t		pid = HostPid;
	int			status;
	char	   *what;
	bool		restarted = false;
	bool		stopping = ShutdownRequestPending;	/* no new host then */

	HostFailureCount++;
	(void) kill(pid, SIGKILL);
	close(HostFd);
	HostFd = -1;
	HostPid = 0;
	status = Reap(pid, HOST_REAP_MS);
	if (why)
		what = pstrdup(why);
	else if (status >= 0)
		what = psprintf("died (%s)", wait_result_to_str(status));
	else
		what = pstrdup("died");
	FinbertDeviceHostFailed();
	ereport(LOG,
			(errmsg("finbert engine host (PID %d) %s%s", (int) pid, what,
					stopping ? "" : "; starting a new one"),
			 device_error ? errdetail("%s", device_error) : 0));

	if (!stopping)
	{
		PG_TRY();
		{
			FinbertHostStart();
			restarted = true;
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
		}
		PG_END_TRY();
	}

	ereport(ERROR,
			(errcode(FINBERT_HOST_ERRCODE),
			 errmsg(restarted ? "finbert engine host died and was restarted" :
					stopping ? "finbert engine host was stopped with the worker" :
					"finbert engine host died and could not be restarted"),
			 errdetail("The engine host process (PID %d) %s while it ran the batch of this request.%s%s",
					   (int) pid, what, device_error ? " Device error: " : "",
					   device_error ? device_error : ""),
			 errhint("The database was not affected; run the statement again.")));
}

/* ------------------------------------------------------------------------
 * Frames
 * ------------------------------------------------------------------------ */
static void
Send(uint32 type, const StringInfo payload)
{
	uint32		hdr[3] = {FB_HOST_MAGIC, type, (uint32) payload->len};
	struct iovec iov[2];
	size_t		total = sizeof(hdr) + payload->len;
	size_t		sent = 0;

	FinbertHostStart();
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = payload->data;
	iov[1].iov_len = payload->len;
	while (sent < total)
	{
		struct msghdr msg;
		ssize_t		w;

		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = 2;
		/* a blocking send: the host reads every frame whole before working */
		w = sendmsg(HostFd, &msg, MSG_NOSIGNAL);
		if (w < 0)
		{
			if (errno == EINTR)
				continue;
			HostFailed(NULL, NULL);
		}
		sent += (size_t) w;
		for (int i = 0; i < 2; i++)
		{
			size_t		used = Min((size_t) w, iov[i].iov_len);

			iov[i].iov_base = (char *) iov[i].iov_base + used;
			iov[i].iov_len -= used;
			w -= (ssize_t) used;
		}
	}
}

/*
 * Reads n bytes, polling: the caller's interrupt (ctl, may be NULL) asks
 * the host to stop (SIGUSR1) and kills it after the grace period; the
 * deadline kills it as hung.
 */
static void
ReadFull(char *buf, size_t n, const fb_run_ctl *ctl, TimestampTz deadline,
		 TimestampTz *stop_deadline)
{
	while (n > 0)
	{
		struct pollfd pfd = {HostFd, POLLIN, 0};
		int			rc = poll(&pfd, 1, HOST_TICK_MS);
		TimestampTz now = GetCurrentTimestamp();

		if (rc > 0)
		{
			ssize_t		r = recv(HostFd, buf, n, MSG_DONTWAIT);

			if (r == 0)
				HostFailed(NULL, NULL);
			if (r < 0)
			{
				if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
					continue;
				HostFailed(NULL, NULL);
			}
			buf += r;
			n -= (size_t) r;
			continue;
		}
		if (rc < 0 && errno != EINTR)
			HostFailed(NULL, NULL);
		if (ctl && ctl->interrupt && ctl->interrupt(ctl->arg))
		{
			if (*stop_deadline == 0)
				*stop_deadline = TimestampTzPlusMilliseconds(now, HOST_STOP_GRACE_MS);
			else if (now >= *stop_deadline)
				HostFailed("did not stop its batch when asked to", NULL);
			(void) kill(HostPid, SIGUSR1);
		}
		if (now >= deadline)
			HostFailed(psprintf("did not answer within finbert.host_timeout (%d ms)",
								finbert_engine_host_timeout), NULL);
	}
}

/*
 * Sends a request and reads the answer of the same type into *answer
 * (palloc'd); ctl: see ReadFull.
 */
static void
Exchange(uint32 type, const StringInfo req, const fb_run_ctl *ctl,
		 fb_host_reader *answer)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   finbert_engine_host_timeout);
	TimestampTz stop_deadline = 0;
	uint32		hdr[3];
	char	   *payload;

	Send(type, req);
	ReadFull((char *) hdr, sizeof(hdr), ctl, deadline, &stop_deadline);
	if (hdr[0] != FB_HOST_MAGIC || hdr[1] != type || hdr[2] > FB_HOST_MAX_FRAME)
		HostFailed("sent a malformed answer", NULL);
	payload = palloc(Max(hdr[2], 1));
	ReadFull(payload, hdr[2], ctl, deadline, &stop_deadline);
	fb_hr_init(answer, payload, hdr[2]);
}

static void
PutU32(StringInfo s, uint32 v)
{
	appendBinaryStringInfo(s, (const char *) &v, sizeof(v));
}

static void
PutI32(StringInfo s, int32 v)
{
	appendBinaryStringInfo(s, (const char *) &v, sizeof(v));
}

static void
PutStr(StringInfo s, const char *str, size_t len)
{
	PutU32(s, (uint32) len);
	appendBinaryStringInfo(s, str, (int) len);
}

static void
PutCStr(StringInfo s, const char *str)
{
	PutStr(s, str ? str : "", str ? strlen(str) : 0);
}

static void
CheckAnswer(fb_host_reader *r)
{
	if (!r->ok)
		HostFailed("sent a malformed answer", NULL);
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */
static void
ReadDevice(fb_host_reader *r, fb_status *st, fb_error *err, fb_device_info *info)
{
	memset(info, 0, sizeof(*info));
	*st = (fb_status) fb_hr_u32(r);
	err->status = *st;
	fb_hr_str_copy(r, err->msg, sizeof(err->msg));
	info->device = (fb_device) fb_hr_u32(r);
	fb_hr_str_copy(r, info->name, sizeof(info->name));
	info->total_bytes = (size_t) fb_hr_u64(r);
	info->used_bytes = (size_t) fb_hr_u64(r);
	fb_hr_str_copy(r, info->note, sizeof(info->note));
	CheckAnswer(r);
}

/*
 * Probes device in the host (a CUDA driver is only ever loaded there).
 * Returns the engine's status; info says which device auto picked.
 */
fb_status
FinbertHostProbe(fb_device device, const char *cuda_module,
				 fb_device_info *info, fb_error *err)
{
	StringInfoData req;
	fb_host_reader r;
	fb_status	st;

	initStringInfo(&req);
	PutU32(&req, (uint32) device);
	PutI32(&req, 0);
	PutCStr(&req, cuda_module);
	Exchange(FB_HOST_PROBE, &req, NULL, &r);
	ReadDevice(&r, &st, err, info);
	return st;
}

/* The device memory of the host's models (FB_OK), for finbert_stats. */
fb_status
FinbertHostDeviceInfo(fb_device_info *info, fb_error *err)
{
	StringInfoData req;
	fb_host_reader r;
	fb_status	st;

	initStringInfo(&req);
	Exchange(FB_HOST_INFO, &req, NULL, &r);
	ReadDevice(&r, &st, err, info);
	return st;
}

/*
 * Opens a model in the host; raises the engine's error (a device error:
 * FB_ERR_DEVICE's SQLSTATE naming what is missing) when it does not load.
 */
void
FinbertHostOpen(const char *name, const char *path, fb_precision precision,
				fb_device device, const char *cuda_module,
				int max_batch_tokens, int threads, const fb_run_ctl *ctl,
				FinbertHostModel *hm)
{
	StringInfoData req;
	fb_host_reader r;
	fb_error	err;
	fb_status	st;
	uint32		id = NextModelId++;

	if (NextModelId == 0)
		NextModelId = 1;
	initStringInfo(&req);
	PutU32(&req, id);
	PutCStr(&req, path);
	PutU32(&req, (uint32) precision);
	PutU32(&req, (uint32) device);
	PutI32(&req, 0);
	PutI32(&req, max_batch_tokens);
	PutI32(&req, threads);
	PutCStr(&req, cuda_module);
	Exchange(FB_HOST_OPEN, &req, ctl, &r);
	st = (fb_status) fb_hr_u32(&r);
	err.status = st;
	fb_hr_str_copy(&r, err.msg, sizeof(err.msg));
	hm->device = (fb_device) fb_hr_u32(&r);
	hm->device_bytes = fb_hr_u64(&r);
	CheckAnswer(&r);
	if (st != FB_OK)
		FinbertEngineError(&err, psprintf("could not load model \"%s\" in the finbert engine host", name));
	hm->id = id;
	hm->generation = HostGeneration;
}

/* Closes a model in the host (nothing when that host has gone). */
void
FinbertHostClose(const FinbertHostModel *hm)
{
	StringInfoData req;
	fb_host_reader r;

	if (HostPid == 0 || hm->generation != HostGeneration || hm->id == 0)
		return;
	initStringInfo(&req);
	PutU32(&req, hm->id);
	Exchange(FB_HOST_CLOSE, &req, NULL, &r);
}

static void
RunRequest(StringInfo req, const FinbertHostModel *hm, uint32 kind,
		   const fb_text *texts, size_t n, const fb_task_options *opts,
		   size_t row_floats)
{
	initStringInfo(req);
	PutU32(req, hm->id);
	PutU32(req, kind);
	PutI32(req, opts->max_length);
	PutI32(req, opts->window_stride);
	PutI32(req, opts->ner_stride);
	PutU32(req, (uint32) opts->pooling);
	PutI32(req, opts->normalize);
	PutU32(req, (uint32) row_floats);
	PutU32(req, (uint32) n);
	for (size_t i = 0; i < n; i++)
		PutStr(req, texts[i].data, texts[i].len);
}

/* A device error leaves the host's CUDA context suspect: restart it. */
static void
CheckDeviceError(fb_status st, const fb_error *err)
{
	if (st == FB_ERR_DEVICE)
		HostFailed("reported a device error", err->msg);
}

/*
 * Classification (kind FB_HOST_CLASSIFY: probabilities) or embeddings
 * (FB_HOST_EMBED) of texts[0 .. n) in the host, rows of row_floats floats
 * into out; *tokens receives the tokens run.  Returns the engine's status;
 * a dead host or a device error raises FINBERT_HOST_ERRCODE.
 */
fb_status
FinbertHostRun(const FinbertHostModel *hm, uint32 kind, const fb_run_ctl *ctl,
			   const fb_text *texts, size_t n, const fb_task_options *opts,
			   float *out, size_t row_floats, uint64 *tokens, fb_error *err)
{
	StringInfoData req;
	fb_host_reader r;
	fb_status	st;

	RunRequest(&req, hm, kind, texts, n, opts, row_floats);
	Exchange(FB_HOST_RUN, &req, ctl, &r);
	pfree(req.data);
	st = (fb_status) fb_hr_u32(&r);
	err->status = st;
	fb_hr_str_copy(&r, err->msg, sizeof(err->msg));
	*tokens = fb_hr_u64(&r);
	HostDeviceUsed = fb_hr_u64(&r);
	if (st == FB_OK)
		fb_hr_bytes(&r, out, sizeof(float) * n * row_floats);
	CheckAnswer(&r);
	CheckDeviceError(st, err);
	return st;
}

/*
 * The entity label s in the local model's label table, as the engine gives
 * it: a label ("company"), or the type at the end of one ("B-company");
 * NULL when none matches.
 */
static const char *
LocalLabel(const fb_model_info *info, const char *s, uint32 len)
{
	for (int l = 0; l < info->n_labels; l++)
	{
		const char *label = info->labels[l];
		size_t		n = label ? strlen(label) : 0;

		if (n >= len && memcmp(label + n - len, s, len) == 0 &&
			(n == len || label[n - len - 1] == '-' || label[n - len - 1] == '_'))
			return label + n - len;
	}
	return NULL;
}

/*
 * Entities of texts[0 .. n) in the host, as the worker's lanes give them
 * (statuses[i], errs[i], tokens[i]; lists[i] malloc'd as the engine's,
 * labels pointing into info's table, the local model's).
 */
void
FinbertHostEntities(const FinbertHostModel *hm, const fb_model_info *info,
					const fb_run_ctl *ctl, const fb_text *texts, size_t n,
					const fb_task_options *opts, fb_entity_list *lists,
					fb_status *statuses, uint64 *tokens, fb_error *errs)
{
	StringInfoData req;
	fb_host_reader r;
	fb_error	err;
	fb_status	st;

	for (size_t i = 0; i < n; i++)
		statuses[i] = FB_ERR_INTERRUPTED;
	RunRequest(&req, hm, FB_HOST_ENTITIES, texts, n, opts, 0);
	Exchange(FB_HOST_RUN, &req, ctl, &r);
	pfree(req.data);
	st = (fb_status) fb_hr_u32(&r);
	fb_hr_str_copy(&r, err.msg, sizeof(err.msg));
	(void) fb_hr_u64(&r);
	HostDeviceUsed = fb_hr_u64(&r);
	CheckAnswer(&r);
	if (st != FB_OK && st != FB_ERR_INTERRUPTED)
		return;					/* the caller runs them again itself */
	for (size_t i = 0; i < n && r.ok; i++)
	{
		fb_status	ts = (fb_status) fb_hr_u32(&r);
		uint32		count;

		errs[i].status = ts;
		fb_hr_str_copy(&r, errs[i].msg, sizeof(errs[i].msg));
		tokens[i] = fb_hr_u64(&r);
		count = fb_hr_u32(&r);
		if (!r.ok || count > r.left / 20)
		{
			r.ok = 0;
			break;
		}
		if (ts == FB_ERR_DEVICE)
		{
			CheckDeviceError(ts, &errs[i]);
		}
		fb_entity_list_init(&lists[i]);
		if (count > 0)
		{
			lists[i].items = calloc(count, sizeof(fb_entity));
			if (lists[i].items == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory")));
		}
		for (uint32 k = 0; k < count && r.ok; k++)
		{
			fb_entity  *e = &lists[i].items[k];
			uint32		len,
						llen;
			const char *s = fb_hr_str(&r, &len);
			const char *label = fb_hr_str(&r, &llen);

			e->start = fb_hr_i32(&r);
			e->end = fb_hr_i32(&r);
			e->score = fb_hr_f32(&r);
			if (!r.ok)
				break;
			e->text = malloc((size_t) len + 1);
			if (e->text == NULL)
			{
				fb_entity_list_free(&lists[i]);
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory")));
			}
			memcpy(e->text, s, len);
			e->text[len] = '\0';
			e->label = LocalLabel(info, label, llen);
			lists[i].n = k + 1;
		}
		statuses[i] = ts;
	}
	if (!r.ok)
	{
		for (size_t i = 0; i < n; i++)
			fb_entity_list_free(&lists[i]);
		HostFailed("sent a malformed answer", NULL);
	}
}
