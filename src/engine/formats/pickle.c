/*
 * pickle.c — the restricted unpickler of fb_pickle.h.
 *
 * A pickle is a program for a stack machine.  This one keeps Python's
 * semantics for the opcodes it knows (a stack, a stack of MARK positions,
 * a memo of indexed objects) and bounds each of them (fb_limits.h), so a
 * program can neither grow memory past a small multiple of its own size
 * nor make the reader recurse.  Strings point into the pickle bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_pickle.h"

/* Opcodes (Python's pickle.py names). */
#define OP_MARK				'('
#define OP_STOP				'.'
#define OP_POP				'0'
#define OP_POP_MARK			'1'
#define OP_DUP				'2'
#define OP_BININT			'J'
#define OP_BININT1			'K'
#define OP_BININT2			'M'
#define OP_NONE				'N'
#define OP_BINPERSID		'Q'
#define OP_REDUCE			'R'
#define OP_BINSTRING		'T'
#define OP_SHORT_BINSTRING	'U'
#define OP_BINUNICODE		'X'
#define OP_APPEND			'a'
#define OP_BUILD			'b'
#define OP_GLOBAL			'c'
#define OP_DICT				'd'
#define OP_EMPTY_DICT		'}'
#define OP_APPENDS			'e'
#define OP_BINGET			'h'
#define OP_LONG_BINGET		'j'
#define OP_LIST				'l'
#define OP_EMPTY_LIST		']'
#define OP_BINPUT			'q'
#define OP_LONG_BINPUT		'r'
#define OP_SETITEM			's'
#define OP_TUPLE			't'
#define OP_EMPTY_TUPLE		')'
#define OP_SETITEMS			'u'
#define OP_BINFLOAT			'G'
#define OP_BINBYTES			'B'
#define OP_SHORT_BINBYTES	'C'
#define OP_PROTO			0x80
#define OP_TUPLE1			0x85
#define OP_TUPLE2			0x86
#define OP_TUPLE3			0x87
#define OP_NEWTRUE			0x88
#define OP_NEWFALSE			0x89
#define OP_LONG1			0x8a
#define OP_SHORT_BINUNICODE 0x8c
#define OP_BINUNICODE8		0x8d
#define OP_STACK_GLOBAL		0x93
#define OP_MEMOIZE			0x94
#define OP_FRAME			0x95

/* The allowed globals. */
enum
{
	G_ORDERED_DICT = 1,
	G_REBUILD_V2,
	G_REBUILD_V1,
	G_REBUILD_PARAMETER,
	G_DEVICE,
	G_STORAGE					/* + the dtype in the object's dtype field */
};

static const struct
{
	const char *module;
	const char *name;
	int			global;
	fb_dtype	dtype;
}			allowed_globals[] =
{
	{"collections", "OrderedDict", G_ORDERED_DICT, FB_DT_F32},
	{"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, FB_DT_F32},
	{"torch._utils", "_rebuild_tensor", G_REBUILD_V1, FB_DT_F32},
	{"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, FB_DT_F32},
	{"torch", "device", G_DEVICE, FB_DT_F32},
	{"torch", "FloatStorage", G_STORAGE, FB_DT_F32},
	{"torch", "HalfStorage", G_STORAGE, FB_DT_F16},
	{"torch", "BFloat16Storage", G_STORAGE, FB_DT_BF16},
	{"torch", "DoubleStorage", G_STORAGE, FB_DT_F64},
	{"torch", "LongStorage", G_STORAGE, FB_DT_I64},
	{"torch", "IntStorage", G_STORAGE, FB_DT_I32},
	{"torch", "ShortStorage", G_STORAGE, FB_DT_I16},
	{"torch", "CharStorage", G_STORAGE, FB_DT_I8},
	{"torch", "ByteStorage", G_STORAGE, FB_DT_U8},
	{"torch", "BoolStorage", G_STORAGE, FB_DT_BOOL},
	{"torch", "UntypedStorage", G_STORAGE, FB_DT_U8},
	{"torch.storage", "UntypedStorage", G_STORAGE, FB_DT_U8},
};

#define N_ALLOWED (sizeof(allowed_globals) / sizeof(allowed_globals[0]))

/* Objects are allocated in chunks that never move. */
#define PK_CHUNK 1024

typedef struct pk_chunk
{
	struct pk_chunk *next;
	size_t		used;
	fb_pk_obj	objs[PK_CHUNK];
} pk_chunk;

struct fb_pickle
{
	pk_chunk   *chunks;
	size_t		n_items;		/* container slots, all objects together */
	size_t		n_objects;
	const fb_pk_obj **storages;
	size_t		n_storages;
	size_t		cap_storages;
};

/* The machine while it runs. */
typedef struct pk_vm
{
	fb_pickle  *pk;
	const uint8_t *p;
	size_t		len;
	size_t		pos;
	size_t		op_pos;			/* offset of the current opcode */
	fb_pk_pid	pid;
	const char *file;
	const char *record;
	fb_error   *err;
	fb_pk_obj **stack;
	size_t		sp;
	size_t		cap;
	size_t		marks[FB_PICKLE_MAX_MARKS];
	int			n_marks;
	fb_pk_obj **memo;
	size_t		memo_cap;
	size_t		memo_len;		/* Python's len(memo), for MEMOIZE */
	bool		over_limit;		/* new_obj refused: err already set */
} pk_vm;

static fb_status
vm_fail(pk_vm *vm, const char *fmt,...) FB_PRINTF(2, 3);

static fb_status
vm_fail(pk_vm *vm, const char *fmt,...)
{
	char		buf[FB_ERRMSG_MAX];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fb_fail(vm->err, FB_ERR_CORRUPT, "\"%s\": pickle \"%s\", opcode 0x%02x at byte %zu: %s",
				   vm->file, vm->record,
				   vm->op_pos < vm->len ? vm->p[vm->op_pos] : 0, vm->op_pos, buf);
}

static fb_pk_obj *
new_obj(pk_vm *vm, fb_pk_kind kind)
{
	pk_chunk   *c = vm->pk->chunks;
	fb_pk_obj  *o;

	/* refused by the caller's push(NULL) as out of memory; the limit is
	 * reported here so the message says why */
	if (vm->pk->n_objects >= FB_PICKLE_MAX_OBJECTS)
	{
		vm_fail(vm, "more than %d objects", FB_PICKLE_MAX_OBJECTS);
		vm->over_limit = true;
		return NULL;
	}
	vm->pk->n_objects++;
	if (c == NULL || c->used == PK_CHUNK)
	{
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			return NULL;
		c->next = vm->pk->chunks;
		vm->pk->chunks = c;
	}
	o = &c->objs[c->used++];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	return o;
}

/* Grows a container to hold extra more items, within FB_PICKLE_MAX_ITEMS. */
static fb_status
reserve_items(pk_vm *vm, fb_pk_obj *o, size_t extra)
{
	size_t		need;

	if (extra > FB_PICKLE_MAX_ITEMS - vm->pk->n_items)
		return vm_fail(vm, "containers hold more than %d items", FB_PICKLE_MAX_ITEMS);
	need = o->n + extra;
	if (need > o->cap)
	{
		size_t		cap = o->cap ? o->cap : 4;
		fb_pk_obj **items;

		while (cap < need)
			cap *= 2;			/* need <= FB_PICKLE_MAX_ITEMS: no wrap */
		items = realloc(o->items, cap * sizeof(*items));
		if (items == NULL)
			return fb_fail(vm->err, FB_ERR_NOMEM, "out of memory unpickling \"%s\"", vm->file);
		o->items = items;
		o->cap = cap;
	}
	vm->pk->n_items += extra;
	return FB_OK;
}

static fb_status
push(pk_vm *vm, fb_pk_obj *o)
{
	if (o == NULL)
		return vm->over_limit ? FB_ERR_CORRUPT :
			fb_fail(vm->err, FB_ERR_NOMEM, "out of memory unpickling \"%s\"", vm->file);
	if (vm->sp == vm->cap)
	{
		size_t		cap = vm->cap ? vm->cap * 2 : 64;
		fb_pk_obj **s;

		if (vm->sp >= FB_PICKLE_MAX_STACK)
			return vm_fail(vm, "stack deeper than %d", FB_PICKLE_MAX_STACK);
		if (cap > FB_PICKLE_MAX_STACK)
			cap = FB_PICKLE_MAX_STACK;
		s = realloc(vm->stack, cap * sizeof(*s));
		if (s == NULL)
			return fb_fail(vm->err, FB_ERR_NOMEM, "out of memory unpickling \"%s\"", vm->file);
		vm->stack = s;
		vm->cap = cap;
	}
	vm->stack[vm->sp++] = o;
	return FB_OK;
}

/* Objects above the innermost MARK (Python keeps them in a fresh list). */
static size_t
base(const pk_vm *vm)
{
	return vm->n_marks > 0 ? vm->marks[vm->n_marks - 1] : 0;
}

static fb_status
pop(pk_vm *vm, fb_pk_obj **o)
{
	if (vm->sp <= base(vm))
		return vm_fail(vm, "stack underflow");
	*o = vm->stack[--vm->sp];
	return FB_OK;
}

static fb_status
top(pk_vm *vm, fb_pk_obj **o)
{
	if (vm->sp <= base(vm))
		return vm_fail(vm, "stack underflow");
	*o = vm->stack[vm->sp - 1];
	return FB_OK;
}

/* Pops the innermost MARK; the objects above it are stack[*from .. sp). */
static fb_status
pop_mark(pk_vm *vm, size_t *from)
{
	if (vm->n_marks == 0)
		return vm_fail(vm, "no MARK on the stack");
	*from = vm->marks[--vm->n_marks];
	return FB_OK;
}

static fb_status
need(pk_vm *vm, size_t n)
{
	if (vm->len - vm->pos < n)
		return vm_fail(vm, "program ends inside an argument of %zu bytes", n);
	return FB_OK;
}

static uint64_t
le_bytes(const uint8_t *p, int n)
{
	uint64_t	v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A new tuple or list holding stack[from .. sp), which it pops. */
static fb_status
collect(pk_vm *vm, fb_pk_kind kind, size_t from)
{
	fb_pk_obj  *o = new_obj(vm, kind);
	size_t		n = vm->sp - from;
	fb_status	st;

	if (o == NULL)
		return push(vm, NULL);
	if ((st = reserve_items(vm, o, n)) != FB_OK)
		return st;
	if (n > 0)
		memcpy(o->items, vm->stack + from, n * sizeof(*o->items));
	o->n = n;
	vm->sp = from;
	return push(vm, o);
}

/* Adds stack[from .. sp) as key, value pairs to dict d (popping them). */
static fb_status
set_items(pk_vm *vm, fb_pk_obj *d, size_t from)
{
	size_t		n = vm->sp - from;
	fb_status	st;

	if (d->kind != FB_PK_DICT)
		return vm_fail(vm, "SETITEM(S) on a non-dict");
	if (n % 2 != 0)
		return vm_fail(vm, "odd number of dict items");
	if ((st = reserve_items(vm, d, n)) != FB_OK)
		return st;
	if (n > 0)
		memcpy(d->items + d->n, vm->stack + from, n * sizeof(*d->items));
	d->n += n;
	vm->sp = from;
	return FB_OK;
}

static fb_status
memo_put(pk_vm *vm, uint64_t idx)
{
	fb_pk_obj  *o = NULL;
	fb_status	st;

	if ((st = top(vm, &o)) != FB_OK)
		return st;
	if (idx >= FB_PICKLE_MAX_MEMO)
		return vm_fail(vm, "memo index %llu is over the limit of %d",
					   (unsigned long long) idx, FB_PICKLE_MAX_MEMO);
	if (idx >= vm->memo_cap)
	{
		size_t		cap = vm->memo_cap ? vm->memo_cap : 64;
		fb_pk_obj **m;

		while (cap <= idx)
			cap *= 2;
		m = realloc(vm->memo, cap * sizeof(*m));
		if (m == NULL)
			return fb_fail(vm->err, FB_ERR_NOMEM, "out of memory unpickling \"%s\"", vm->file);
		memset(m + vm->memo_cap, 0, (cap - vm->memo_cap) * sizeof(*m));
		vm->memo = m;
		vm->memo_cap = cap;
	}
	if (vm->memo[idx] == NULL)
		vm->memo_len++;
	vm->memo[idx] = o;
	return FB_OK;
}

static fb_status
memo_get(pk_vm *vm, uint64_t idx)
{
	if (idx >= vm->memo_cap || vm->memo[idx] == NULL)
		return vm_fail(vm, "memo index %llu was never stored", (unsigned long long) idx);
	return push(vm, vm->memo[idx]);
}

static fb_status
push_str(pk_vm *vm, size_t n)
{
	fb_pk_obj  *o;
	fb_status	st;

	if ((st = need(vm, n)) != FB_OK)
		return st;
	o = new_obj(vm, FB_PK_STR);
	if (o != NULL)
	{
		o->s = vm->p + vm->pos;
		o->len = n;
	}
	vm->pos += n;
	return push(vm, o);
}

static fb_status
push_int(pk_vm *vm, int64_t v)
{
	fb_pk_obj  *o = new_obj(vm, FB_PK_INT);

	if (o != NULL)
		o->i = v;
	return push(vm, o);
}

/* Resolves module.name against the allow-list; anything else is refused
 * here, before any REDUCE could use it. */
static fb_status
push_global(pk_vm *vm, const uint8_t *mod, size_t mod_len, const uint8_t *name,
			size_t name_len)
{
	fb_pk_obj  *o;

	for (size_t i = 0; i < N_ALLOWED; i++)
	{
		if (strlen(allowed_globals[i].module) == mod_len &&
			memcmp(allowed_globals[i].module, mod, mod_len) == 0 &&
			strlen(allowed_globals[i].name) == name_len &&
			memcmp(allowed_globals[i].name, name, name_len) == 0)
		{
			o = new_obj(vm, FB_PK_GLOBAL);
			if (o != NULL)
			{
				o->global = allowed_globals[i].global;
				o->dtype = allowed_globals[i].dtype;
			}
			return push(vm, o);
		}
	}

	/* quote the refused name (bounded; non-printable bytes as '?') */
	{
		char		q[2][80];
		const uint8_t *src[2] = {mod, name};
		size_t		n[2] = {mod_len, name_len};

		for (int k = 0; k < 2; k++)
		{
			size_t		j;

			for (j = 0; j < n[k] && j < sizeof(q[k]) - 4; j++)
				q[k][j] = (src[k][j] >= 0x20 && src[k][j] < 0x7f && src[k][j] != '"') ?
					(char) src[k][j] : '?';
			if (j < n[k])
				q[k][j++] = '.', q[k][j++] = '.', q[k][j++] = '.';
			q[k][j] = '\0';
		}
		return vm_fail(vm, "global \"%s.%s\" is not allowed (only tensor-rebuild functions, storage types and OrderedDict are)",
					   q[0], q[1]);
	}
}

/* GLOBAL: "module\nname\n" in the program. */
static fb_status
op_global(pk_vm *vm)
{
	const uint8_t *mod = vm->p + vm->pos;
	const uint8_t *nl1,
			   *nl2;
	size_t		rest = vm->len - vm->pos;

	nl1 = memchr(mod, '\n', rest > 256 ? 256 : rest);
	if (nl1 == NULL)
		return vm_fail(vm, "GLOBAL module name not terminated within 256 bytes");
	rest -= (size_t) (nl1 + 1 - mod);
	nl2 = memchr(nl1 + 1, '\n', rest > 256 ? 256 : rest);
	if (nl2 == NULL)
		return vm_fail(vm, "GLOBAL name not terminated within 256 bytes");
	vm->pos = (size_t) (nl2 + 1 - vm->p);
	return push_global(vm, mod, (size_t) (nl1 - mod), nl1 + 1, (size_t) (nl2 - nl1 - 1));
}

static bool
is_int(const fb_pk_obj *o)
{
	return o->kind == FB_PK_INT;
}

/* A tuple of at most FB_PICKLE_MAX_DIMS ints into dims. */
static bool
int_tuple(const fb_pk_obj *o, int64_t *dims, int *n)
{
	if (o->kind != FB_PK_TUPLE || o->n > FB_PICKLE_MAX_DIMS)
		return false;
	for (size_t i = 0; i < o->n; i++)
	{
		if (!is_int(o->items[i]))
			return false;
		dims[i] = o->items[i]->i;
	}
	*n = (int) o->n;
	return true;
}

/* torch._utils._rebuild_tensor(_v2)(storage, offset, size, stride, ...) */
static fb_status
rebuild_tensor(pk_vm *vm, const fb_pk_obj *args, bool v2)
{
	fb_pk_obj  *t;
	int			ns,
				nt;

	if (args->kind != FB_PK_TUPLE ||
		(v2 ? (args->n != 6 && args->n != 7) : args->n != 4))
		return vm_fail(vm, "tensor rebuild with %zu arguments", args->n);
	if (args->items[0]->kind != FB_PK_STORAGE || !is_int(args->items[1]))
		return vm_fail(vm, "tensor rebuild without a storage and an offset");
	t = new_obj(vm, FB_PK_TENSOR);
	if (t == NULL)
		return push(vm, NULL);
	t->shape = malloc(2 * FB_PICKLE_MAX_DIMS * sizeof(int64_t));
	if (t->shape == NULL)
		return push(vm, NULL);
	t->stride = t->shape + FB_PICKLE_MAX_DIMS;
	if (!int_tuple(args->items[2], t->shape, &ns) ||
		!int_tuple(args->items[3], t->stride, &nt) || ns != nt)
		return vm_fail(vm, "tensor size and stride are not int tuples of one rank <= %d",
					   FB_PICKLE_MAX_DIMS);
	if (v2)
	{
		const fb_pk_obj *hooks = args->items[5];

		if (args->items[4]->kind != FB_PK_BOOL)
			return vm_fail(vm, "requires_grad is not a bool");
		/* backward hooks are not saved: torch writes an empty OrderedDict */
		if (hooks->kind != FB_PK_DICT || hooks->n != 0)
			return vm_fail(vm, "tensor with backward hooks");
		if (args->n == 7 && args->items[6]->kind != FB_PK_DICT &&
			args->items[6]->kind != FB_PK_NONE)
			return vm_fail(vm, "tensor metadata is not a dict");
	}
	if (args->items[1]->i < 0)
		return vm_fail(vm, "negative storage offset");
	t->storage = args->items[0];
	t->dtype = args->items[0]->dtype;
	t->offset = args->items[1]->i;
	t->ndim = ns;
	return push(vm, t);
}

static fb_status
op_reduce(pk_vm *vm)
{
	fb_pk_obj  *args = NULL,
			   *fn = NULL,
			   *o;
	fb_status	st;

	if ((st = pop(vm, &args)) != FB_OK || (st = pop(vm, &fn)) != FB_OK)
		return st;
	if (fn->kind != FB_PK_GLOBAL || args->kind != FB_PK_TUPLE)
		return vm_fail(vm, "REDUCE of something other than an allowed global");
	switch (fn->global)
	{
		case G_ORDERED_DICT:
			o = new_obj(vm, FB_PK_DICT);
			if (o == NULL)
				return push(vm, NULL);
			if (args->n == 0)
				return push(vm, o);
			/* OrderedDict([(k, v), ...]) */
			if (args->n == 1 && args->items[0]->kind == FB_PK_LIST)
			{
				const fb_pk_obj *l = args->items[0];

				if ((st = reserve_items(vm, o, 2 * l->n)) != FB_OK)
					return st;
				for (size_t i = 0; i < l->n; i++)
				{
					if (l->items[i]->kind != FB_PK_TUPLE || l->items[i]->n != 2)
						return vm_fail(vm, "OrderedDict item is not a pair");
					o->items[o->n++] = l->items[i]->items[0];
					o->items[o->n++] = l->items[i]->items[1];
				}
				return push(vm, o);
			}
			return vm_fail(vm, "OrderedDict with unexpected arguments");
		case G_REBUILD_V2:
			return rebuild_tensor(vm, args, true);
		case G_REBUILD_V1:
			return rebuild_tensor(vm, args, false);
		case G_REBUILD_PARAMETER:
			/* (data, requires_grad, backward_hooks): the tensor itself */
			if (args->n != 3 || args->items[0]->kind != FB_PK_TENSOR ||
				args->items[1]->kind != FB_PK_BOOL ||
				args->items[2]->kind != FB_PK_DICT || args->items[2]->n != 0)
				return vm_fail(vm, "parameter rebuild with unexpected arguments");
			return push(vm, args->items[0]);
		case G_DEVICE:
			if (args->n < 1 || args->n > 2 || args->items[0]->kind != FB_PK_STR ||
				(args->n == 2 && !is_int(args->items[1])))
				return vm_fail(vm, "torch.device with unexpected arguments");
			return push(vm, new_obj(vm, FB_PK_OPAQUE));
		default:
			return vm_fail(vm, "REDUCE of a storage type");
	}
}

/* BINPERSID: ('storage', StorageType, key, location, numel[, view]) */
static fb_status
op_persid(pk_vm *vm)
{
	fb_pk_obj  *pid = NULL,
			   *o;
	const fb_pk_obj *type,
			   *key;
	size_t		want = vm->pid == FB_PK_PID_LEGACY ? 6 : 5;
	fb_pickle  *pk = vm->pk;
	fb_status	st;

	if (vm->pid == FB_PK_PID_NONE)
		return vm_fail(vm, "persistent id outside the state dict");
	if ((st = pop(vm, &pid)) != FB_OK)
		return st;
	if (pid->kind != FB_PK_TUPLE || pid->n != want ||
		!fb_pk_str_is(pid->items[0], "storage"))
		return vm_fail(vm, "persistent id is not a %zu-tuple ('storage', ...)", want);
	type = pid->items[1];
	key = pid->items[2];
	if (type->kind != FB_PK_GLOBAL || type->global != G_STORAGE)
		return vm_fail(vm, "persistent id without a storage type");
	if (key->kind != FB_PK_STR || key->len == 0 || key->len > 64 ||
		memchr(key->s, '/', key->len) != NULL || memchr(key->s, '\0', key->len) != NULL)
		return vm_fail(vm, "storage key is not a short name");
	if (pid->items[3]->kind != FB_PK_STR)
		return vm_fail(vm, "storage location is not a string");
	if (!is_int(pid->items[4]) || pid->items[4]->i < 0)
		return vm_fail(vm, "storage size is not a non-negative int");
	if (want == 6 && pid->items[5]->kind != FB_PK_NONE)
		return vm_fail(vm, "storage views (legacy view metadata) are not supported");

	/* one object per key: the same storage shared by several tensors */
	for (size_t i = 0; i < pk->n_storages; i++)
	{
		const fb_pk_obj *s = pk->storages[i];

		if (s->len == key->len && memcmp(s->s, key->s, key->len) == 0)
		{
			if (s->dtype != type->dtype || s->numel != (uint64_t) pid->items[4]->i)
				return vm_fail(vm, "storage \"%.*s\" is referenced with two types or sizes",
							   (int) key->len, (const char *) key->s);
			return push(vm, (fb_pk_obj *) s);
		}
	}
	if (pk->n_storages >= FB_ST_MAX_TENSORS)
		return vm_fail(vm, "more than %d storages", FB_ST_MAX_TENSORS);
	if (pk->n_storages == pk->cap_storages)
	{
		size_t		cap = pk->cap_storages ? pk->cap_storages * 2 : 64;
		const fb_pk_obj **s = realloc(pk->storages, cap * sizeof(*s));

		if (s == NULL)
			return fb_fail(vm->err, FB_ERR_NOMEM, "out of memory unpickling \"%s\"", vm->file);
		pk->storages = s;
		pk->cap_storages = cap;
	}
	o = new_obj(vm, FB_PK_STORAGE);
	if (o == NULL)
		return push(vm, NULL);
	o->dtype = type->dtype;
	o->s = key->s;
	o->len = key->len;
	o->numel = (uint64_t) pid->items[4]->i;
	pk->storages[pk->n_storages++] = o;
	return push(vm, o);
}

/* One opcode; *stop is set by STOP. */
static fb_status
step(pk_vm *vm, fb_pk_obj **result, bool *stop)
{
	fb_pk_obj  *a = NULL,
			   *b = NULL,
			   *o = NULL;
	size_t		from = 0;
	uint64_t	n;
	fb_status	st;
	uint8_t		op;

	vm->op_pos = vm->pos;
	if (vm->pos >= vm->len)
		return vm_fail(vm, "program ends without STOP");
	op = vm->p[vm->pos++];
	switch (op)
	{
		case OP_PROTO:
			if ((st = need(vm, 1)) != FB_OK)
				return st;
			if (vm->p[vm->pos] < 2 || vm->p[vm->pos] > 5)
				return vm_fail(vm, "pickle protocol %u", vm->p[vm->pos]);
			vm->pos++;
			return FB_OK;
		case OP_FRAME:
			/* a hint for buffered readers: the frame's bytes follow */
			if ((st = need(vm, 8)) != FB_OK)
				return st;
			vm->pos += 8;
			return FB_OK;
		case OP_STOP:
			if ((st = pop(vm, result)) != FB_OK)
				return st;
			if (vm->sp != 0 || vm->n_marks != 0)
				return vm_fail(vm, "STOP with %zu objects and %d marks left",
							   vm->sp, vm->n_marks);
			*stop = true;
			return FB_OK;
		case OP_MARK:
			if (vm->n_marks >= FB_PICKLE_MAX_MARKS)
				return vm_fail(vm, "MARKs nested deeper than %d", FB_PICKLE_MAX_MARKS);
			vm->marks[vm->n_marks++] = vm->sp;
			return FB_OK;
		case OP_POP:
			return pop(vm, &a);
		case OP_POP_MARK:
			if ((st = pop_mark(vm, &from)) != FB_OK)
				return st;
			vm->sp = from;
			return FB_OK;
		case OP_DUP:
			if ((st = top(vm, &a)) != FB_OK)
				return st;
			return push(vm, a);
		case OP_NONE:
			return push(vm, new_obj(vm, FB_PK_NONE));
		case OP_NEWTRUE:
		case OP_NEWFALSE:
			o = new_obj(vm, FB_PK_BOOL);
			if (o != NULL)
				o->i = op == OP_NEWTRUE;
			return push(vm, o);
		case OP_BININT:
			if ((st = need(vm, 4)) != FB_OK)
				return st;
			n = le_bytes(vm->p + vm->pos, 4);
			vm->pos += 4;
			return push_int(vm, (int64_t) (int32_t) (uint32_t) n);
		case OP_BININT1:
			if ((st = need(vm, 1)) != FB_OK)
				return st;
			return push_int(vm, vm->p[vm->pos++]);
		case OP_BININT2:
			if ((st = need(vm, 2)) != FB_OK)
				return st;
			n = le_bytes(vm->p + vm->pos, 2);
			vm->pos += 2;
			return push_int(vm, (int64_t) n);
		case OP_LONG1:
			if ((st = need(vm, 1)) != FB_OK)
				return st;
			n = vm->p[vm->pos++];
			if ((st = need(vm, (size_t) n)) != FB_OK)
				return st;
			if (n <= 8)
			{
				uint64_t	v = le_bytes(vm->p + vm->pos, (int) n);

				/* two's complement of n bytes, sign-extended */
				if (n > 0 && n < 8 && (vm->p[vm->pos + n - 1] & 0x80))
					v |= ~(uint64_t) 0 << (8 * n);
				vm->pos += n;
				return push_int(vm, (int64_t) v);
			}
			o = new_obj(vm, FB_PK_BIGINT);
			if (o != NULL)
			{
				o->s = vm->p + vm->pos;
				o->len = (size_t) n;
			}
			vm->pos += n;
			return push(vm, o);
		case OP_BINFLOAT:
			if ((st = need(vm, 8)) != FB_OK)
				return st;
			o = new_obj(vm, FB_PK_FLOAT);
			if (o != NULL)
			{
				uint64_t	bits = 0;

				for (int i = 0; i < 8; i++)		/* big-endian */
					bits = bits << 8 | vm->p[vm->pos + i];
				memcpy(&o->f, &bits, sizeof(o->f));
			}
			vm->pos += 8;
			return push(vm, o);
		case OP_SHORT_BINUNICODE:
		case OP_SHORT_BINSTRING:
		case OP_SHORT_BINBYTES:
			if ((st = need(vm, 1)) != FB_OK)
				return st;
			return push_str(vm, vm->p[vm->pos++]);
		case OP_BINUNICODE:
		case OP_BINSTRING:
		case OP_BINBYTES:
			if ((st = need(vm, 4)) != FB_OK)
				return st;
			n = le_bytes(vm->p + vm->pos, 4);
			vm->pos += 4;
			return push_str(vm, (size_t) n);
		case OP_BINUNICODE8:
			if ((st = need(vm, 8)) != FB_OK)
				return st;
			n = le_bytes(vm->p + vm->pos, 8);
			vm->pos += 8;
			if (n > vm->len)
				return vm_fail(vm, "string of %llu bytes", (unsigned long long) n);
			return push_str(vm, (size_t) n);
		case OP_EMPTY_TUPLE:
			return push(vm, new_obj(vm, FB_PK_TUPLE));
		case OP_TUPLE1:
		case OP_TUPLE2:
		case OP_TUPLE3:
			n = (uint64_t) (op - OP_TUPLE1 + 1);
			if (vm->sp - base(vm) < n)
				return vm_fail(vm, "stack underflow");
			return collect(vm, FB_PK_TUPLE, vm->sp - (size_t) n);
		case OP_TUPLE:
			if ((st = pop_mark(vm, &from)) != FB_OK)
				return st;
			return collect(vm, FB_PK_TUPLE, from);
		case OP_EMPTY_LIST:
			return push(vm, new_obj(vm, FB_PK_LIST));
		case OP_LIST:
			if ((st = pop_mark(vm, &from)) != FB_OK)
				return st;
			return collect(vm, FB_PK_LIST, from);
		case OP_APPEND:
			if ((st = pop(vm, &a)) != FB_OK || (st = top(vm, &b)) != FB_OK)
				return st;
			if (b->kind != FB_PK_LIST)
				return vm_fail(vm, "APPEND to a non-list");
			if ((st = reserve_items(vm, b, 1)) != FB_OK)
				return st;
			b->items[b->n++] = a;
			return FB_OK;
		case OP_APPENDS:
			if ((st = pop_mark(vm, &from)) != FB_OK)
				return st;
			if (from <= base(vm))
				return vm_fail(vm, "APPENDS without a list");
			b = vm->stack[from - 1];
			if (b->kind != FB_PK_LIST)
				return vm_fail(vm, "APPENDS to a non-list");
			n = vm->sp - from;
			if ((st = reserve_items(vm, b, (size_t) n)) != FB_OK)
				return st;
			if (n > 0)
				memcpy(b->items + b->n, vm->stack + from, (size_t) n * sizeof(*b->items));
			b->n += (size_t) n;
			vm->sp = from;
			return FB_OK;
		case OP_EMPTY_DICT:
			return push(vm, new_obj(vm, FB_PK_DICT));
		case OP_DICT:
			if ((st = pop_mark(vm, &from)) != FB_OK)
				return st;
			o = new_obj(vm, FB_PK_DICT);
			if (o == NULL)
				return push(vm, NULL);
			if ((st = set_items(vm, o, from)) != FB_OK)
				return st;
			return push(vm, o);
		case OP_SETITEM:
			if (vm->sp - base(vm) < 3)
				return vm_fail(vm, "stack underflow");
			return set_items(vm, vm->stack[vm->sp - 3], vm->sp - 2);
		case OP_SETITEMS:
			if ((st = pop_mark(vm, &from)) != FB_OK)
				return st;
			if (from <= base(vm))
				return vm_fail(vm, "SETITEMS without a dict");
			return set_items(vm, vm->stack[from - 1], from);
		case OP_BINPUT:
			if ((st = need(vm, 1)) != FB_OK)
				return st;
			return memo_put(vm, vm->p[vm->pos++]);
		case OP_LONG_BINPUT:
			if ((st = need(vm, 4)) != FB_OK)
				return st;
			n = le_bytes(vm->p + vm->pos, 4);
			vm->pos += 4;
			return memo_put(vm, n);
		case OP_MEMOIZE:
			return memo_put(vm, vm->memo_len);
		case OP_BINGET:
			if ((st = need(vm, 1)) != FB_OK)
				return st;
			return memo_get(vm, vm->p[vm->pos++]);
		case OP_LONG_BINGET:
			if ((st = need(vm, 4)) != FB_OK)
				return st;
			n = le_bytes(vm->p + vm->pos, 4);
			vm->pos += 4;
			return memo_get(vm, n);
		case OP_GLOBAL:
			return op_global(vm);
		case OP_STACK_GLOBAL:
			if ((st = pop(vm, &b)) != FB_OK || (st = pop(vm, &a)) != FB_OK)
				return st;
			if (a->kind != FB_PK_STR || b->kind != FB_PK_STR)
				return vm_fail(vm, "STACK_GLOBAL of non-strings");
			return push_global(vm, a->s, a->len, b->s, b->len);
		case OP_REDUCE:
			return op_reduce(vm);
		case OP_BINPERSID:
			return op_persid(vm);
		case OP_BUILD:
			/* only an OrderedDict's instance dict (state_dict's _metadata),
			 * which a reader of tensors ignores */
			if ((st = pop(vm, &a)) != FB_OK || (st = top(vm, &b)) != FB_OK)
				return st;
			if (b->kind != FB_PK_DICT || (a->kind != FB_PK_DICT && a->kind != FB_PK_NONE))
				return vm_fail(vm, "BUILD of an object other than a dict");
			return FB_OK;
		default:
			return vm_fail(vm, "opcode not allowed in a state dict");
	}
}

fb_status
fb_pickle_load(const uint8_t *buf, size_t len, fb_pk_pid pid, const char *file,
			   const char *record, fb_pickle **out, const fb_pk_obj **root,
			   size_t *consumed, fb_error *err)
{
	pk_vm		vm;
	fb_pk_obj  *result = NULL;
	bool		stop = false;
	fb_status	st = FB_OK;

	*out = NULL;
	*root = NULL;
	if (len > FB_PICKLE_MAX_BYTES)
		len = FB_PICKLE_MAX_BYTES;	/* a longer program fails at the limit */
	memset(&vm, 0, sizeof(vm));
	vm.pk = calloc(1, sizeof(fb_pickle));
	if (vm.pk == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory unpickling \"%s\"", file);
	vm.p = buf;
	vm.len = len;
	vm.pid = pid;
	vm.file = file;
	vm.record = record;
	vm.err = err;
	while (!stop && st == FB_OK)
		st = step(&vm, &result, &stop);
	free(vm.stack);
	free(vm.memo);
	if (st != FB_OK)
	{
		fb_pickle_free(vm.pk);
		return st;
	}
	*out = vm.pk;
	*root = result;
	if (consumed != NULL)
		*consumed = vm.pos;
	return FB_OK;
}

void
fb_pickle_free(fb_pickle *pk)
{
	pk_chunk   *c;

	if (pk == NULL)
		return;
	c = pk->chunks;
	while (c != NULL)
	{
		pk_chunk   *next = c->next;

		for (size_t i = 0; i < c->used; i++)
		{
			free(c->objs[i].items);
			free(c->objs[i].shape);
		}
		free(c);
		c = next;
	}
	free(pk->storages);
	free(pk);
}

size_t
fb_pickle_n_storages(const fb_pickle *pk)
{
	return pk->n_storages;
}

const fb_pk_obj *
fb_pickle_storage(const fb_pickle *pk, size_t i)
{
	return i < pk->n_storages ? pk->storages[i] : NULL;
}

bool
fb_pk_str_is(const fb_pk_obj *o, const char *s)
{
	return o != NULL && o->kind == FB_PK_STR && o->len == strlen(s) &&
		memcmp(o->s, s, o->len) == 0;
}

const fb_pk_obj *
fb_pk_dict_get(const fb_pk_obj *dict, const char *key)
{
	const fb_pk_obj *found = NULL;

	if (dict == NULL || dict->kind != FB_PK_DICT)
		return NULL;
	/* later items win, as in Python */
	for (size_t i = 0; i + 1 < dict->n; i += 2)
		if (fb_pk_str_is(dict->items[i], key))
			found = dict->items[i + 1];
	return found;
}
