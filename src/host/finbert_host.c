/*
 * finbert_host.c — the engine host process: runs the finbert engine (and
 * with it the CUDA context, when a model opens on a GPU) outside every
 * PostgreSQL process.
 *
 * The finbert background worker starts it (fork + exec, src/pg/host.c)
 * with one end of a socketpair as descriptor FB_HOST_FD and talks to it in
 * the frames of host_proto.h.  It is not a child of the postmaster, so
 * when it dies (a driver crash, a bad kernel, kill -9) the postmaster sees
 * nothing: the worker reaps it, fails the requests of that batch and starts
 * a new one.  No PostgreSQL code or shared memory here.
 *
 * It dies with the worker: PR_SET_PDEATHSIG(SIGKILL), and EOF on the
 * socket ends it.  SIGUSR1 interrupts the running batch (the engine polls
 * the flag between layers), which is then answered FB_ERR_INTERRUPTED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "finbert.h"
#include "host_proto.h"

#define MAX_MODELS 64

typedef struct HostModel
{
	uint32_t	id;				/* 0: free */
	fb_model   *model;
	fb_session *session;
} HostModel;

typedef struct Buf
{
	unsigned char *data;
	size_t		len;
	size_t		cap;
} Buf;

static HostModel models[MAX_MODELS];
static volatile sig_atomic_t interrupted = 0;

static void
on_sigusr1(int sig)
{
	(void) sig;
	interrupted = 1;
}

static int
host_interrupt(void *arg)
{
	(void) arg;
	return interrupted;
}

static const fb_run_ctl host_ctl = {host_interrupt, NULL};

static void
die(const char *what)
{
	fprintf(stderr, "finbert-host: %s\n", what);
	_exit(2);
}

static void
put(Buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (b->data == NULL)
			die("out of memory");
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
put_u32(Buf *b, uint32_t v)
{
	put(b, &v, sizeof(v));
}

static void
put_i32(Buf *b, int32_t v)
{
	put(b, &v, sizeof(v));
}

static void
put_u64(Buf *b, uint64_t v)
{
	put(b, &v, sizeof(v));
}

static void
put_str(Buf *b, const char *s)
{
	uint32_t	n = s ? (uint32_t) strlen(s) : 0;

	put_u32(b, n);
	put(b, s, n);
}

static int
read_full(int fd, void *p, size_t n)
{
	unsigned char *c = p;

	while (n > 0)
	{
		ssize_t		r = read(fd, c, n);

		if (r == 0)
			return 0;
		if (r < 0)
		{
			if (errno == EINTR)
				continue;
			return 0;
		}
		c += r;
		n -= (size_t) r;
	}
	return 1;
}

static void
write_full(int fd, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n > 0)
	{
		ssize_t		w = write(fd, c, n);

		if (w < 0)
		{
			if (errno == EINTR)
				continue;
			_exit(0);			/* the worker has gone */
		}
		c += w;
		n -= (size_t) w;
	}
}

/* Sends b (payload) as a frame of type. */
static void
answer(uint32_t type, Buf *b)
{
	uint32_t	hdr[3] = {FB_HOST_MAGIC, type, (uint32_t) b->len};

	write_full(FB_HOST_FD, hdr, sizeof(hdr));
	if (b->len)
		write_full(FB_HOST_FD, b->data, b->len);
	b->len = 0;
}

static HostModel *
find_model(uint32_t id)
{
	for (int i = 0; i < MAX_MODELS; i++)
		if (models[i].id == id && id != 0)
			return &models[i];
	return NULL;
}

static void
close_model(HostModel *m)
{
	fb_session_free(m->session);
	fb_model_free(m->model);
	memset(m, 0, sizeof(*m));
}

static void
put_device(Buf *b, fb_status st, const char *msg, const fb_device_info *info)
{
	put_u32(b, (uint32_t) st);
	put_str(b, msg);
	put_u32(b, (uint32_t) info->device);
	put_str(b, info->name);
	put_u64(b, info->total_bytes);
	put_u64(b, info->used_bytes);
	put_str(b, info->note);
}

static void
do_probe(fb_host_reader *r, Buf *b)
{
	fb_model_options o = fb_model_default_options();
	char		module[4096];
	fb_device_info info;
	fb_error	err = {FB_OK, ""};
	fb_status	st;

	o.device = (fb_device) fb_hr_u32(r);
	o.device_ordinal = fb_hr_i32(r);
	fb_hr_str_copy(r, module, sizeof(module));
	if (!r->ok)
		die("malformed probe");
	o.cuda_module = module[0] ? module : NULL;
	memset(&info, 0, sizeof(info));
	st = fb_device_probe(&o, &info, &err);
	put_device(b, st, err.msg, &info);
}

/* Device memory in use by the models on CUDA (0: none there). */
static uint64_t
device_used(void)
{
	size_t		used = 0,
				weights = 0;

	for (int i = 0; i < MAX_MODELS; i++)
	{
		fb_device_info mi;
		fb_error	err;

		if (models[i].id == 0 ||
			fb_model_get_info(models[i].model)->device != FB_DEVICE_CUDA)
			continue;
		weights += fb_model_get_info(models[i].model)->device_bytes;
		memset(&mi, 0, sizeof(mi));
		if (used == 0 && fb_model_device_info(models[i].model, &mi, &err) == FB_OK)
			used = mi.used_bytes;
	}
	return used > weights ? used : weights;
}

/* Memory of the device the models run on: the first CUDA model's, else the CPU. */
static void
do_info(Buf *b)
{
	fb_device_info info;
	fb_error	err = {FB_OK, ""};
	fb_status	st = FB_OK;
	size_t		used = 0;

	memset(&info, 0, sizeof(info));
	snprintf(info.name, sizeof(info.name), "cpu");
	for (int i = 0; i < MAX_MODELS; i++)
	{
		fb_device_info mi;

		if (models[i].id == 0 ||
			fb_model_get_info(models[i].model)->device != FB_DEVICE_CUDA)
			continue;
		memset(&mi, 0, sizeof(mi));
		st = fb_model_device_info(models[i].model, &mi, &err);
		if (st != FB_OK)
			break;
		if (info.device != FB_DEVICE_CUDA)
			info = mi;
		used += fb_model_get_info(models[i].model)->device_bytes;
	}
	if (info.device == FB_DEVICE_CUDA && info.used_bytes < used)
		info.used_bytes = used;
	put_device(b, st, err.msg, &info);
}

static void
do_open(fb_host_reader *r, Buf *b)
{
	fb_model_options o = fb_model_default_options();
	uint32_t	id = fb_hr_u32(r);
	char		path[4096];
	char		module[4096];
	int			threads;
	int			mbt;
	HostModel  *m;
	fb_error	err = {FB_OK, ""};
	fb_status	st;

	fb_hr_str_copy(r, path, sizeof(path));
	o.precision = (fb_precision) fb_hr_u32(r);
	o.device = (fb_device) fb_hr_u32(r);
	o.device_ordinal = fb_hr_i32(r);
	mbt = fb_hr_i32(r);
	threads = fb_hr_i32(r);
	fb_hr_str_copy(r, module, sizeof(module));
	if (!r->ok || id == 0)
		die("malformed open");
	if (mbt > 0)
		o.max_batch_tokens = mbt;
	o.cuda_module = module[0] ? module : NULL;

	if ((m = find_model(id)) != NULL)
		close_model(m);
	m = find_model(0);
	for (int i = 0; i < MAX_MODELS && m == NULL; i++)
		if (models[i].id == 0)
			m = &models[i];
	if (m == NULL)
	{
		err.status = st = FB_ERR_LIMIT;
		snprintf(err.msg, sizeof(err.msg), "the engine host holds %d models already", MAX_MODELS);
	}
	else if ((st = fb_model_open(path, &o, &m->model, &err)) == FB_OK)
	{
		st = fb_session_open(m->model, &m->session, &err);
		if (st != FB_OK)
		{
			fb_model_free(m->model);
			m->model = NULL;
		}
	}
	if (st == FB_OK)
	{
		const fb_model_info *info = fb_model_get_info(m->model);

		m->id = id;
		fb_session_set_ctl(m->session, &host_ctl);
		if (threads > 0)
			(void) fb_session_set_threads(m->session, threads);
		put_u32(b, FB_OK);
		put_str(b, "");
		put_u32(b, (uint32_t) info->device);
		put_u64(b, info->device_bytes);
		return;
	}
	put_u32(b, (uint32_t) st);
	put_str(b, err.msg);
	put_u32(b, (uint32_t) o.device);
	put_u64(b, 0);
}

static fb_status
run_rows(HostModel *m, uint32_t kind, const fb_text *texts, size_t n,
		 const fb_task_options *opts, float *out, fb_error *err)
{
	if (kind == FB_HOST_CLASSIFY)
		return fb_classify(m->session, texts, n, opts, NULL, out, err);
	return fb_embed(m->session, texts, n, opts, out, err);
}

static void
do_run(fb_host_reader *r, Buf *b)
{
	uint32_t	id = fb_hr_u32(r);
	uint32_t	kind = fb_hr_u32(r);
	fb_task_options opts = fb_task_default_options();
	uint32_t	row_floats,
				n;
	fb_text    *texts;
	HostModel  *m;
	fb_error	err = {FB_OK, ""};
	fb_status	st = FB_OK;
	uint64_t	before;

	opts.max_length = fb_hr_i32(r);
	opts.window_stride = fb_hr_i32(r);
	opts.ner_stride = fb_hr_i32(r);
	opts.pooling = (fb_pooling) fb_hr_u32(r);
	opts.normalize = fb_hr_i32(r);
	row_floats = fb_hr_u32(r);
	n = fb_hr_u32(r);
	if (!r->ok || n > r->left / 4 || kind < FB_HOST_CLASSIFY || kind > FB_HOST_ENTITIES ||
		row_floats > (1u << 20))
		die("malformed run");
	texts = calloc(n ? n : 1, sizeof(fb_text));
	if (texts == NULL)
		die("out of memory");
	for (uint32_t i = 0; i < n; i++)
	{
		uint32_t	len;

		texts[i].data = fb_hr_str(r, &len);
		texts[i].len = len;
	}
	if (!r->ok)
		die("malformed run texts");

	m = find_model(id);
	if (m == NULL)
	{
		put_u32(b, FB_ERR_INVALID);
		put_str(b, "model not open in the engine host");
		put_u64(b, 0);
		put_u64(b, 0);
		free(texts);
		return;
	}
	before = fb_session_tokens(m->session);
	if (kind != FB_HOST_ENTITIES)
	{
		float	   *out = calloc((size_t) n * row_floats + 1, sizeof(float));

		if (out == NULL)
			die("out of memory");
		st = run_rows(m, kind, texts, n, &opts, out, &err);
		put_u32(b, (uint32_t) st);
		put_str(b, st == FB_OK ? "" : err.msg);
		put_u64(b, fb_session_tokens(m->session) - before);
		put_u64(b, device_used());
		if (st == FB_OK)
			put(b, out, sizeof(float) * (size_t) n * row_floats);
		free(out);
		free(texts);
		return;
	}

	/* entities: text by text; after an interrupt the rest are not computed */
	{
		Buf			ents = {0};

		for (uint32_t i = 0; i < n; i++)
		{
			fb_entity_list list;
			uint64_t	t0 = fb_session_tokens(m->session);
			fb_status	ts = FB_ERR_INTERRUPTED;

			fb_entity_list_init(&list);
			err.msg[0] = '\0';
			if (st != FB_ERR_INTERRUPTED)
				ts = fb_entities(m->session, &texts[i], &opts, &list, &err);
			if (ts == FB_ERR_INTERRUPTED)
				st = FB_ERR_INTERRUPTED;
			put_u32(&ents, (uint32_t) ts);
			put_str(&ents, ts == FB_OK ? "" : err.msg);
			put_u64(&ents, fb_session_tokens(m->session) - t0);
			put_u32(&ents, ts == FB_OK ? (uint32_t) list.n : 0);
			for (size_t k = 0; ts == FB_OK && k < list.n; k++)
			{
				put_str(&ents, list.items[k].text);
				put_str(&ents, list.items[k].label);
				put_i32(&ents, list.items[k].start);
				put_i32(&ents, list.items[k].end);
				put(&ents, &list.items[k].score, sizeof(float));
			}
			fb_entity_list_free(&list);
		}
		put_u32(b, (uint32_t) st);
		put_str(b, "");
		put_u64(b, fb_session_tokens(m->session) - before);
		put_u64(b, device_used());
		put(b, ents.data, ents.len);
		free(ents.data);
	}
	free(texts);
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t	none;
	pid_t		parent = getppid();
	unsigned char *payload = NULL;
	size_t		cap = 0;
	Buf			out = {0};

	(void) argc;
	(void) argv;
	/* die with the worker, even if it is killed without closing the socket */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || parent == 1)
		die("no parent");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);	/* a terminal's ^C is the server's */
	sa.sa_handler = SIG_DFL;
	sigaction(SIGTERM, &sa, NULL);
	/* SIGUSR1 arrives blocked from the worker until its handler is in place */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	for (;;)
	{
		uint32_t	hdr[3];
		fb_host_reader r;

		if (!read_full(FB_HOST_FD, hdr, sizeof(hdr)))
			break;				/* EOF: the worker closed or died */
		if (hdr[0] != FB_HOST_MAGIC || hdr[2] > FB_HOST_MAX_FRAME)
			die("bad frame");
		if (hdr[2] > cap)
		{
			free(payload);
			cap = hdr[2];
			payload = malloc(cap);
			if (payload == NULL)
				die("out of memory");
		}
		if (!read_full(FB_HOST_FD, payload, hdr[2]))
			break;
		fb_hr_init(&r, payload, hdr[2]);
		interrupted = 0;
		switch (hdr[1])
		{
			case FB_HOST_PROBE:
				do_probe(&r, &out);
				break;
			case FB_HOST_OPEN:
				do_open(&r, &out);
				break;
			case FB_HOST_CLOSE:
				{
					HostModel  *m = find_model(fb_hr_u32(&r));

					if (m)
						close_model(m);
				}
				break;
			case FB_HOST_RUN:
				do_run(&r, &out);
				break;
			case FB_HOST_INFO:
				do_info(&out);
				break;
			default:
				die("unknown request");
		}
		answer(hdr[1], &out);
	}
	for (int i = 0; i < MAX_MODELS; i++)
		if (models[i].id)
			close_model(&models[i]);
	return 0;
}
