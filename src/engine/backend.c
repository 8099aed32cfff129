/*
 * backend.c — which backend runs a model, and the CUDA module.
 *
 * The CPU backend is linked in.  The CUDA backend is a shared module
 * (build/finbert_cuda.so, from kernels/) loaded with dlopen() the first
 * time a model asks for a device, so the engine itself never links a CUDA
 * library: a CPU-only server needs none installed.  A module stays loaded
 * for the life of the process (CUDA libraries are not made to be
 * unloaded); modules are cached by path.
 */
#define _GNU_SOURCE				/* dladdr */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_model.h"

int
fb_device_from_name(const char *name, fb_device *out)
{
	if (strcmp(name, "cpu") == 0)
		*out = FB_DEVICE_CPU;
	else if (strcmp(name, "cuda") == 0)
		*out = FB_DEVICE_CUDA;
	else if (strcmp(name, "auto") == 0)
		*out = FB_DEVICE_AUTO;
	else
		return -1;
	return 0;
}

const char *
fb_device_name(fb_device d)
{
	switch (d)
	{
		case FB_DEVICE_CPU:
			return "cpu";
		case FB_DEVICE_CUDA:
			return "cuda";
		case FB_DEVICE_AUTO:
			return "auto";
	}
	return "cpu";
}

int
fb_attention_from_name(const char *name, fb_attention *out)
{
	if (strcmp(name, "auto") == 0)
		*out = FB_ATTENTION_AUTO;
	else if (strcmp(name, "fused") == 0)
		*out = FB_ATTENTION_FUSED;
	else if (strcmp(name, "gemm") == 0)
		*out = FB_ATTENTION_GEMM;
	else
		return -1;
	return 0;
}

const char *
fb_attention_name(fb_attention a)
{
	switch (a)
	{
		case FB_ATTENTION_AUTO:
			return "auto";
		case FB_ATTENTION_FUSED:
			return "fused";
		case FB_ATTENTION_GEMM:
			return "gemm";
	}
	return "auto";
}

/* ---------------------------------------------------------------------
 * The CUDA module
 * --------------------------------------------------------------------- */
typedef struct loaded_module
{
	char	   *path;
	const fb_backend_i *iface;
} loaded_module;

static loaded_module modules[FB_MAX_MODULES];
static int	n_modules;
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * finbert_cuda.so next to the object the engine is linked into: the
 * program (build/finbert-cli) or the shared library (finbert.so in
 * PostgreSQL's pkglibdir, where make install puts the module too).
 */
static char *
default_module_path(void)
{
	Dl_info		info;
	const char *slash;
	char	   *path;
	size_t		dir_len;

	if (dladdr((void *) &default_module_path, &info) == 0 || info.dli_fname == NULL)
		return strdup("finbert_cuda.so");
	slash = strrchr(info.dli_fname, '/');
	if (slash == NULL)
		return strdup("./finbert_cuda.so");
	dir_len = (size_t) (slash - info.dli_fname);
	path = malloc(dir_len + sizeof("/finbert_cuda.so"));
	if (path != NULL)
	{
		memcpy(path, info.dli_fname, dir_len);
		strcpy(path + dir_len, "/finbert_cuda.so");
	}
	return path;
}

/* Loads (once) the module at path and returns its interface. */
static fb_status
load_module(const char *path_opt, const fb_backend_i **out, fb_error *err)
{
	char	   *path = path_opt != NULL && path_opt[0] != '\0' ? strdup(path_opt) : default_module_path();
	void	   *handle;
	fb_backend_entry_fn entry;
	const fb_backend_i *iface;
	fb_status	st = FB_OK;

	*out = NULL;
	if (path == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	pthread_mutex_lock(&modules_mu);
	for (int i = 0; i < n_modules; i++)
	{
		if (strcmp(modules[i].path, path) == 0)
		{
			*out = modules[i].iface;
			goto done;
		}
	}
	if (n_modules == FB_MAX_MODULES)
	{
		st = fb_fail(err, FB_ERR_LIMIT, "%s: more than %d CUDA modules in one process",
					 path, FB_MAX_MODULES);
		goto done;
	}
	/* RTLD_LOCAL: the module's CUDA symbols stay its own */
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL)
	{
		const char *why = dlerror();

		st = fb_fail(err, FB_ERR_DEVICE,
					 "cannot load the CUDA backend module: %s (build it with make CUDA=1 where nvcc is installed; it needs the CUDA runtime libraries at run time)",
					 why != NULL ? why : path);
		goto done;
	}
	entry = (fb_backend_entry_fn) dlsym(handle, FB_BACKEND_ENTRY);
	iface = entry != NULL ? entry(FB_BACKEND_ABI) : NULL;
	if (iface == NULL || iface->abi != FB_BACKEND_ABI)
	{
		dlclose(handle);
		st = fb_fail(err, FB_ERR_DEVICE,
					 "%s is not a finbert backend module of ABI %d (rebuild it with this engine)",
					 path, FB_BACKEND_ABI);
		goto done;
	}
	modules[n_modules].path = path;
	modules[n_modules].iface = iface;
	n_modules++;
	path = NULL;				/* kept by the cache */
	*out = iface;
done:
	pthread_mutex_unlock(&modules_mu);
	free(path);
	return st;
}

/*
 * The backend for opts: CPU, or CUDA when its module loads and the device
 * answers.  AUTO falls back to the CPU and says why in info->note.
 */
static fb_status
select_backend(const fb_model_options *o, const fb_backend_i **be, fb_device_info *info,
			   fb_error *err)
{
	fb_error	why = {0};
	const fb_backend_i *cuda = NULL;
	fb_status	st;

	if (o->device == FB_DEVICE_CPU)
	{
		*be = fb_cpu_backend();
		return (*be)->probe(0, info, err);
	}
	st = load_module(o->cuda_module, &cuda, &why);
	if (st == FB_OK)
		st = cuda->probe(o->device_ordinal, info, &why);
	if (st == FB_OK)
	{
		*be = cuda;
		return FB_OK;
	}
	if (o->device == FB_DEVICE_CUDA)
	{
		if (err != NULL)
			*err = why;
		return st;
	}
	*be = fb_cpu_backend();
	if ((st = (*be)->probe(0, info, err)) != FB_OK)
		return st;
	snprintf(info->note, sizeof(info->note), "%s", why.msg);
	return FB_OK;
}

fb_status
fb_device_probe(const fb_model_options *opts, fb_device_info *info, fb_error *err)
{
	fb_model_options defaults = fb_model_default_options();
	const fb_backend_i *be;
	fb_device_info tmp;

	if (opts == NULL)
		opts = &defaults;
	return select_backend(opts, &be, info != NULL ? info : &tmp, err);
}

/* The fp32 view of the parameters every backend starts from. */
static void
fill_weights(fb_model *m)
{
	const fb_config *c = &m->cfg;
	fb_weights *w = &m->w;

	memset(w, 0, sizeof(*w));
	w->arch = c->arch;
	w->head = m->info.head;
	w->act = c->act;
	w->dtype = strcmp(m->dtype_name, "F16") == 0 ? FB_SRC_F16 :
		strcmp(m->dtype_name, "BF16") == 0 ? FB_SRC_BF16 :
		strcmp(m->dtype_name, "F32") == 0 ? FB_SRC_F32 : FB_SRC_MIXED;
	w->n_layers = c->n_layers;
	w->hidden = c->hidden;
	w->n_heads = c->n_heads;
	w->intermediate = c->intermediate;
	w->embedding_size = c->embedding_size;
	w->vocab_size = c->vocab_size;
	w->max_position = c->max_position;
	w->type_vocab_size = c->type_vocab_size;
	w->n_labels = m->info.head == FB_HEAD_NONE ? 0 : c->n_labels;
	w->layer_norm_eps = c->layer_norm_eps;
	w->word_emb = m->word_emb;
	w->pos_emb = m->pos_emb;
	w->type_emb = m->type_emb;
	w->emb_ln_g = m->emb_ln_g;
	w->emb_ln_b = m->emb_ln_b;
	w->emb_proj_w = m->emb_proj_w;
	w->emb_proj_b = m->emb_proj_b;
	w->layers = m->layers;
	w->pool_w = m->pool_w;
	w->pool_b = m->pool_b;
	w->cls_dense_w = m->cls_dense_w;
	w->cls_dense_b = m->cls_dense_b;
	w->cls_w = m->cls_w;
	w->cls_b = m->cls_b;
}

fb_status
fb_model_attach_backend(fb_model *m, const fb_model_options *o, fb_error *err)
{
	fb_backend_options bo;
	fb_device_info dev;
	fb_model_options eff = *o;
	fb_status	st;

	/* int8 is a CPU precision: with AUTO it keeps the model on the CPU */
	if (eff.device == FB_DEVICE_AUTO && eff.precision == FB_PRECISION_INT8)
		eff.device = FB_DEVICE_CPU;
	if (eff.device == FB_DEVICE_CUDA && eff.precision == FB_PRECISION_INT8)
		return fb_fail(err, FB_ERR_UNSUPPORTED,
					   "precision int8 runs on the CPU only (the CUDA backend computes in fp16 or bf16)");
	if ((st = select_backend(&eff, &m->backend, &dev, err)) != FB_OK)
		return st;
	fill_weights(m);
	memset(&bo, 0, sizeof(bo));
	bo.precision = eff.precision;
	bo.device = dev.ordinal;
	bo.max_batch_tokens = m->max_batch_tokens;
	bo.attention = (int) eff.attention;
	st = m->backend->model_init(&m->w, &bo, &m->bmodel, &m->binfo, err);
	if (st != FB_OK)
	{
		m->backend = NULL;
		m->bmodel = NULL;
		return st;
	}
	m->info.device = dev.device;
	m->info.device_ordinal = dev.ordinal;
	return FB_OK;
}

void
fb_model_detach_backend(fb_model *m)
{
	if (m->backend != NULL && m->bmodel != NULL)
		m->backend->model_free(m->bmodel);
	m->backend = NULL;
	m->bmodel = NULL;
}

fb_status
fb_model_device_info(const fb_model *m, fb_device_info *info, fb_error *err)
{
	return m->backend->probe(m->info.device_ordinal, info, err);
}

fb_status
fb_batch_check(const fb_model *m, const fb_batch *b, size_t *n_tokens, int *max_len,
			   fb_error *err)
{
	size_t		total = 0;
	int			longest = 0;

	if (b == NULL || b->n_seq < 1 || b->ids == NULL || b->lens == NULL)
		return fb_fail(err, FB_ERR_INVALID, "empty batch");
	for (int i = 0; i < b->n_seq; i++)
	{
		int			L = b->lens[i];

		if (L < 1 || L > m->cfg.max_position)
			return fb_fail(err, FB_ERR_LIMIT,
						   "sequence %d has %d tokens; the model accepts 1 to %d",
						   i, L, m->cfg.max_position);
		if (b->ids[i] == NULL)
			return fb_fail(err, FB_ERR_INVALID, "sequence %d has no token ids", i);
		for (int p = 0; p < L; p++)
		{
			if (b->ids[i][p] < 0 || b->ids[i][p] >= m->cfg.vocab_size)
				return fb_fail(err, FB_ERR_INVALID, "token id %d outside the vocabulary",
							   b->ids[i][p]);
		}
		total += (size_t) L;
		longest = L > longest ? L : longest;
	}
	*n_tokens = total;
	*max_len = longest;
	return FB_OK;
}
