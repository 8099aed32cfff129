/*
 * test_weight_files.c — hostile pytorch_model.bin, TensorFlow checkpoint
 * and sharded-index files: every one is a clean error naming the file and
 * the problem (FB_ERR_CORRUPT, or FB_ERR_UNSUPPORTED for well-formed
 * features the engine does not read), never a crash, never code run.
 *
 * Cases: pickles calling os.system / builtins.eval / subprocess.Popen
 * (written by tools/make_format_fixtures.py with Python's pickler); memo,
 * stack, MARK, object and item bombs; opcodes and BUILD / REDUCE uses a
 * state dict never has; shapes whose element count overflows and views
 * outside their storage; truncations of the zip, legacy and TensorFlow
 * files at every structural boundary; flipped bytes and CRC mismatches;
 * hand-built TensorFlow tables (Snappy blocks, bad restart points,
 * overflowing shapes); sharded indexes naming other files.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb_test.h"
#include "formats/fb_crc.h"
#include "formats/fb_pickle.h"
#include "formats/fb_source.h"
#include "formats/fb_tfbundle.h"
#include "formats/fb_torchbin.h"
#include "formats/fb_zip.h"

#define FIXTURES "test/fixtures/formats/"
#define PWNED "/tmp/finbert-pwned"

/* ------------------------------------------------------------------------
 * Reading a file image the way the loader does
 * ------------------------------------------------------------------------
 */

typedef enum kind
{
	K_TORCH,
	K_TF
} kind;

/*
 * Opens buf as file `name` (plus, for TensorFlow, one data shard) and
 * reads every floating tensor.  Returns the first non-OK status; *values
 * (when not NULL) receives the sum of all values read, to compare an
 * accepted mutation with the original.
 */
static fb_status
read_all(kind k, const char *name, const uint8_t *buf, size_t len,
		 const char *shard_name, const uint8_t *shard, size_t shard_len,
		 double *values, fb_error *err)
{
	fb_source  *src = fb_source_new("mem", "test");
	int			fi;
	fb_status	st;
	double		sum = 0.0;

	fi = fb_source_add_memory(src, name, buf, len, err);
	if (shard_name != NULL)
		fb_source_add_memory(src, shard_name, shard, shard_len, err);
	st = k == K_TORCH ? fb_torch_add_file(src, fi, err) : fb_tf_add_bundle(src, fi, err);
	if (st == FB_OK)
		st = fb_source_finish(src, err);
	for (size_t i = 0; st == FB_OK && i < src->n_tensors; i++)
	{
		const fb_tensor *t = &src->tensors[i];
		float	   *v;

		if (t->dtype != FB_DT_F32 && t->dtype != FB_DT_F16 && t->dtype != FB_DT_BF16)
			continue;
		v = malloc((size_t) t->n_elems * sizeof(float) + 4);
		st = fb_source_read_f32(src, t, v, err);
		for (size_t j = 0; st == FB_OK && j < t->n_elems; j++)
			sum += v[j];
		free(v);
	}
	fb_source_close(src);
	if (values != NULL)
		*values = sum;
	return st;
}

static bool
clean_error(fb_status st, const fb_error *err, const char *name)
{
	return (st == FB_ERR_CORRUPT || st == FB_ERR_UNSUPPORTED) && strstr(err->msg, name) != NULL;
}

/* ------------------------------------------------------------------------
 * Hostile pickles
 * ------------------------------------------------------------------------
 */

static void
test_code_execution(void)
{
	static const char *const files[][2] = {
		{"os_system", "os.system"},
		{"builtins_eval", "builtins.eval"},
		{"subprocess_popen", "subprocess.Popen"},
	};

	unlink(PWNED);
	for (size_t i = 0; i < 3; i++)
		for (int legacy = 0; legacy < 2; legacy++)
		{
			char		name[128];
			fb_source  *src = NULL;
			fb_error	err = {0};
			fb_status	st;

			snprintf(name, sizeof(name), "%s%s.bin", files[i][0], legacy ? "_legacy" : "");
			st = fb_source_open_torch("test/data/torchbin", name, &src, &err);
			CHECK(st == FB_ERR_CORRUPT && src == NULL, "%s: status %d: %s", name, st, err.msg);
			CHECK(strstr(err.msg, name) != NULL && strstr(err.msg, files[i][1]) != NULL &&
				  strstr(err.msg, "not allowed") != NULL, "%s: message: %s", name, err.msg);
		}
	CHECK(access(PWNED, F_OK) != 0, "nothing was executed");
}

/* Runs a pickle program; expects refusal with `what` in the message. */
static void
expect_refused(const char *label, const uint8_t *p, size_t n, fb_pk_pid pid, const char *what)
{
	fb_pickle  *pk = NULL;
	const fb_pk_obj *root = NULL;
	fb_error	err = {0};
	fb_status	st = fb_pickle_load(p, n, pid, "evil.bin", "archive/data.pkl", &pk, &root, NULL, &err);

	CHECK(st == FB_ERR_CORRUPT && pk == NULL, "%s: status %d", label, st);
	CHECK(strstr(err.msg, "evil.bin") != NULL && strstr(err.msg, "archive/data.pkl") != NULL &&
		  strstr(err.msg, what) != NULL, "%s: message: %s", label, err.msg);
	fb_pickle_free(pk);
}

#define REFUSED(label, lit, pid, what) \
	expect_refused(label, (const uint8_t *) (lit), sizeof(lit) - 1, pid, what)

static void
test_pickle_vm(void)
{
	uint8_t    *big;
	size_t		n;

	REFUSED("STACK_GLOBAL os.system", "\x80\x02X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93.",
			FB_PK_PID_ZIP, "os.system");
	REFUSED("GLOBAL posix.system", "\x80\x02" "cposix\nsystem\n.", FB_PK_PID_ZIP, "posix.system");
	REFUSED("unterminated GLOBAL", "\x80\x02" "ctorch", FB_PK_PID_ZIP, "not terminated");
	REFUSED("memo index bomb", "\x80\x02]r\xff\xff\xff\xff.", FB_PK_PID_ZIP, "memo index");
	REFUSED("memo read of nothing", "\x80\x02h\x07.", FB_PK_PID_ZIP, "never stored");
	REFUSED("stack underflow", "\x80\x02" "0.", FB_PK_PID_ZIP, "underflow");
	REFUSED("TUPLE2 across a MARK", "\x80\x02N(N\x86.", FB_PK_PID_ZIP, "underflow");
	REFUSED("no STOP", "\x80\x02N", FB_PK_PID_ZIP, "without STOP");
	REFUSED("protocol 0 INT", "I42\n.", FB_PK_PID_ZIP, "not allowed");
	REFUSED("NEWOBJ", "\x80\x02" "ccollections\nOrderedDict\n)\x81.", FB_PK_PID_ZIP, "not allowed");
	REFUSED("BUILD of a list", "\x80\x02]}b.", FB_PK_PID_ZIP, "BUILD");
	REFUSED("REDUCE of a string", "\x80\x02X\x01\x00\x00\x00" "a)R.", FB_PK_PID_ZIP, "REDUCE");
	REFUSED("OrderedDict(1)", "\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", FB_PK_PID_ZIP,
			"OrderedDict");
	REFUSED("REDUCE of a storage type", "\x80\x02" "ctorch\nFloatStorage\n)R.", FB_PK_PID_ZIP,
			"storage type");
	REFUSED("persistent id in a header pickle", "\x80\x02N\x85Q.", FB_PK_PID_NONE, "persistent id");
	REFUSED("persistent id not a storage",
			"\x80\x02X\x03\x00\x00\x00" "abcN\x86Q.", FB_PK_PID_ZIP, "persistent id");
	REFUSED("storage key with a slash",
			"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x04\x00\x00\x00../0X\x03\x00\x00\x00" "cpuK\x04tQ.",
			FB_PK_PID_ZIP, "storage key");
	REFUSED("legacy view metadata",
			"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04K\x01tQ.",
			FB_PK_PID_LEGACY, "view");
	REFUSED("tensor with backward hooks",
			"\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n"
			"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04tQ"
			"K\x00K\x04\x85K\x01\x85\x89}X\x01\x00\x00\x00hNstR.",
			FB_PK_PID_ZIP, "hooks");
	REFUSED("STOP with leftovers", "\x80\x02NN.", FB_PK_PID_ZIP, "left");

	/* nesting bomb: MARKs */
	big = malloc(1 << 23);
	n = 0;
	big[n++] = 0x80;
	big[n++] = 2;
	for (int i = 0; i < 1000; i++)
		big[n++] = '(';
	big[n++] = '.';
	expect_refused("MARK bomb", big, n, FB_PK_PID_ZIP, "nested deeper");

	/* stack bomb: 200,000 Nones */
	n = 2;
	for (int i = 0; i < 200000; i++)
		big[n++] = 'N';
	big[n++] = '.';
	expect_refused("stack bomb", big, n, FB_PK_PID_ZIP, "stack deeper");

	/* object bomb: DUP of one list is free, but APPENDS of fresh objects
	 * is not: 1.2 M Nones in batches of 60,000 */
	n = 2;
	big[n++] = ']';
	for (int b = 0; b < 20; b++)
	{
		big[n++] = '(';
		for (int i = 0; i < 60000; i++)
			big[n++] = 'N';
		big[n++] = 'e';
	}
	big[n++] = '.';
	expect_refused("object bomb", big, n, FB_PK_PID_ZIP, "objects");

	/* item bomb: one list appended to itself through the memo, 60,000
	 * references per APPENDS, made by DUP (no new objects) */
	n = 2;
	big[n++] = ']';
	big[n++] = 'q';
	big[n++] = 0;
	for (int b = 0; b < 80; b++)
	{
		big[n++] = '(';
		big[n++] = 'h';
		big[n++] = 0;
		for (int i = 0; i < 60000; i++)
			big[n++] = '2';
		big[n++] = 'e';
	}
	big[n++] = '.';
	expect_refused("item bomb", big, n, FB_PK_PID_ZIP, "items");
	free(big);
}

/* ------------------------------------------------------------------------
 * Legacy streams built here: shapes and views the checks must refuse
 * ------------------------------------------------------------------------
 */

static const char legacy_head[] =
	"\x80\x02\x8a\x0al\xfc\x9c" "F\xf9 j\xa8P\x19."
	"\x80\x02M\xe9\x03."
	"\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.";

/* A legacy .bin with one tensor "w" of size/stride/offset given as pickle
 * bytes, on storage "0" of 4 floats. */
static size_t
legacy_with(uint8_t *out, const char *geometry, size_t glen)
{
	static const char pre[] =
		"\x80\x02}(X\x01\x00\x00\x00w"
		"ctorch._utils\n_rebuild_tensor_v2\n"
		"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04NtQ";
	static const char post[] = "\x89}tRu.";
	static const char keys[] = "\x80\x02](X\x01\x00\x00\x00" "0e.";
	size_t		n = 0;

	memcpy(out + n, legacy_head, sizeof(legacy_head) - 1);
	n += sizeof(legacy_head) - 1;
	memcpy(out + n, pre, sizeof(pre) - 1);
	n += sizeof(pre) - 1;
	memcpy(out + n, geometry, glen);
	n += glen;
	memcpy(out + n, post, sizeof(post) - 1);
	n += sizeof(post) - 1;
	memcpy(out + n, keys, sizeof(keys) - 1);
	n += sizeof(keys) - 1;
	memcpy(out + n, "\x04\0\0\0\0\0\0\0", 8);
	n += 8;
	memset(out + n, 0, 16);		/* four zero floats */
	return n + 16;
}

#define GEOM(lit) lit, sizeof(lit) - 1

static void
test_views(void)
{
	static const struct
	{
		const char *label;
		const char *geom;
		size_t		len;
		fb_status	want;
		const char *what;
	}			cases[] = {
		/* offset 0, size (4,), stride (1,): valid */
		{"valid", GEOM("K\x00K\x04\x85K\x01\x85"), FB_OK, ""},
		/* offset 1: reaches element 4 of 4 */
		{"offset past storage", GEOM("K\x01K\x04\x85K\x01\x85"), FB_ERR_CORRUPT, "reaches element"},
		/* stride 2 over 4 elements of size 3 */
		{"stride past storage", GEOM("K\x00K\x03\x85K\x02\x85"), FB_ERR_CORRUPT, "reaches element"},
		/* size (2^40, 2^40): the element count overflows */
		{"shape overflow", GEOM("K\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x06\x00\x00\x00\x00\x00\x01\x86K\x01K\x01\x86"),
		 FB_ERR_CORRUPT, "overflows"},
		/* size (2^62, 4), stride (4, 1): count * 4 bytes overflows */
		{"bytes overflow", GEOM("K\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40K\x04\x86K\x04K\x01\x86"),
		 FB_ERR_CORRUPT, "overflow"},
		/* size (0, 2^62): empty, any strides */
		{"empty", GEOM("K\x00K\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x20\x86K\x01K\x01\x86"), FB_OK, ""},
		/* negative size */
		{"negative size", GEOM("K\x00J\xff\xff\xff\xff\x85K\x01\x85"), FB_ERR_CORRUPT, "negative"},
		/* negative offset */
		{"negative offset", GEOM("J\xff\xff\xff\xffK\x04\x85K\x01\x85"), FB_ERR_CORRUPT, "negative"},
		/* size and stride of different ranks */
		{"rank mismatch", GEOM("K\x00K\x02K\x02\x86K\x01\x85"), FB_ERR_CORRUPT, "rank"},
	};
	uint8_t		buf[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		size_t		n = legacy_with(buf, cases[i].geom, cases[i].len);
		fb_error	err = {0};
		fb_status	st = read_all(K_TORCH, "view.bin", buf, n, NULL, NULL, 0, NULL, &err);

		CHECK(st == cases[i].want, "%s: status %d: %s", cases[i].label, st, err.msg);
		if (cases[i].want != FB_OK)
			CHECK(strstr(err.msg, "view.bin") != NULL && strstr(err.msg, cases[i].what) != NULL,
				  "%s: message: %s", cases[i].label, err.msg);
	}

	/* the storage section: a count disagreeing with the pickle, trailing bytes */
	{
		size_t		n = legacy_with(buf, GEOM("K\x00K\x04\x85K\x01\x85"));
		fb_error	err = {0};

		buf[n - 24] = 5;		/* element count 5 */
		CHECK(read_all(K_TORCH, "count.bin", buf, n, NULL, NULL, 0, NULL, &err) == FB_ERR_CORRUPT &&
			  strstr(err.msg, "holds 5 elements") != NULL, "count: %s", err.msg);
		buf[n - 24] = 4;
		buf[n] = 0;
		CHECK(read_all(K_TORCH, "trail.bin", buf, n + 1, NULL, NULL, 0, NULL, &err) == FB_ERR_CORRUPT &&
			  strstr(err.msg, "after the last storage") != NULL, "trailing: %s", err.msg);
	}
}

/* ------------------------------------------------------------------------
 * Truncations and flipped bytes of real files
 * ------------------------------------------------------------------------
 */

/* Offsets of zip records: local headers, their data, central headers,
 * zip64 records, EOCD. */
static size_t
zip_boundaries(const uint8_t *b, size_t len, size_t *out, size_t cap)
{
	size_t		n = 0;

	for (size_t i = 0; i + 4 <= len && n + 2 < cap; i++)
	{
		uint32_t	sig = (uint32_t) b[i] | (uint32_t) b[i + 1] << 8 |
			(uint32_t) b[i + 2] << 16 | (uint32_t) b[i + 3] << 24;

		if (sig == 0x04034b50u && i + 30 <= len)
		{
			out[n++] = i;
			out[n++] = i + 30 + (b[i + 26] | b[i + 27] << 8) + (b[i + 28] | b[i + 29] << 8);
		}
		else if (sig == 0x02014b50u || sig == 0x06064b50u || sig == 0x07064b50u ||
				 sig == 0x06054b50u)
			out[n++] = i;
	}
	return n;
}

static void
test_truncations(void)
{
	size_t		len,
				sl,
				nb;
	size_t		bounds[4096];
	uint8_t    *b;
	double		ref = 0.0,
				v;
	fb_error	err = {0};
	int			bad = 0,
				tried = 0;

	/* zip: every record boundary -1 / +0 / +1, and every 101st byte */
	b = (uint8_t *) fbt_read_file(FIXTURES "bin_zip_cls/pytorch_model.bin", &len);
	CHECK(b != NULL && read_all(K_TORCH, "z.bin", b, len, NULL, NULL, 0, &ref, &err) == FB_OK,
		  "zip fixture reads: %s", err.msg);
	nb = zip_boundaries(b, len, bounds, 4096);
	CHECK(nb > 60, "zip boundaries: %zu", nb);
	for (size_t i = 0; i < nb + len / 101; i++)
	{
		size_t		base = i < nb ? bounds[i] : (i - nb) * 101;

		for (int d = -1; d <= 1; d++)
		{
			size_t		cut = base + (size_t) d;
			fb_status	st;

			if (cut >= len || (d == -1 && base == 0))
				continue;
			st = read_all(K_TORCH, "z.bin", b, cut, NULL, NULL, 0, NULL, &err);
			tried++;
			if (!clean_error(st, &err, "z.bin"))
			{
				bad++;
				fprintf(stderr, "zip cut at %zu: status %d: %s\n", cut, st, err.msg);
			}
		}
	}
	CHECK(bad == 0, "zip truncations: %d of %d not a clean error", bad, tried);

	/* zip: flipped bytes are refused or harmless (padding), never wrong */
	bad = tried = 0;
	for (size_t i = 0; i < len; i += (i < 4096 || i > len - 4096) ? 1 : 37)
	{
		fb_status	st;

		b[i] ^= 0x40;
		st = read_all(K_TORCH, "z.bin", b, len, NULL, NULL, 0, &v, &err);
		b[i] ^= 0x40;
		tried++;
		if (!(clean_error(st, &err, "z.bin") || (st == FB_OK && v == ref)))
		{
			bad++;
			fprintf(stderr, "zip flip at %zu: status %d (%s), sum %g vs %g\n", i, st, err.msg, v, ref);
		}
	}
	CHECK(bad == 0, "zip flips: %d of %d neither refused nor harmless", bad, tried);

	/* a storage byte changed: the CRC-32 catches it on read */
	b[bounds[3] + 10] ^= 1;		/* data of the first storage entry */
	CHECK(read_all(K_TORCH, "z.bin", b, len, NULL, NULL, 0, NULL, &err) == FB_ERR_CORRUPT &&
		  strstr(err.msg, "CRC-32 mismatch") != NULL, "zip CRC: %s", err.msg);
	free(b);

	/* legacy: every byte of the pickles, and around every storage */
	b = (uint8_t *) fbt_read_file(FIXTURES "bin_legacy_pretraining/pytorch_model.bin", &len);
	CHECK(b != NULL && read_all(K_TORCH, "l.bin", b, len, NULL, NULL, 0, &ref, &err) == FB_OK,
		  "legacy fixture reads: %s", err.msg);
	bad = tried = 0;
	for (size_t cut = 0; cut < len; cut += cut < 8192 ? 1 : 53)
	{
		fb_status	st = read_all(K_TORCH, "l.bin", b, cut, NULL, NULL, 0, NULL, &err);

		tried++;
		if (!clean_error(st, &err, "l.bin"))
		{
			bad++;
			fprintf(stderr, "legacy cut at %zu: status %d: %s\n", cut, st, err.msg);
		}
	}
	CHECK(bad == 0, "legacy truncations: %d of %d not a clean error", bad, tried);
	free(b);

	/* TensorFlow: every truncation of the index, every flipped byte of it */
	b = (uint8_t *) fbt_read_file(FIXTURES "tf_bert/bert_model.ckpt.index", &len);
	{
		uint8_t    *s0 = (uint8_t *) fbt_read_file(FIXTURES "tf_bert/bert_model.ckpt.data-00000-of-00002", &sl);
		size_t		sl1;
		uint8_t    *s1 = (uint8_t *) fbt_read_file(FIXTURES "tf_bert/bert_model.ckpt.data-00001-of-00002", &sl1);
		fb_source  *src = fb_source_new("mem", "test");
		int			fi = fb_source_add_memory(src, "b.index", b, len, &err);
		fb_status	st;

		/* both shards present, the reader must not go to the disk */
		fb_source_add_memory(src, "b.data-00000-of-00002", s0, sl, &err);
		fb_source_add_memory(src, "b.data-00001-of-00002", s1, sl1, &err);
		st = fb_tf_add_bundle(src, fi, &err);
		CHECK(st == FB_OK && fb_source_finish(src, &err) == FB_OK, "tf index reads: %s", err.msg);
		fb_source_close(src);

		bad = tried = 0;
		for (size_t cut = 0; cut < len; cut++)
		{
			src = fb_source_new("mem", "test");
			fi = fb_source_add_memory(src, "b.index", b, cut, &err);
			fb_source_add_memory(src, "b.data-00000-of-00002", s0, sl, &err);
			fb_source_add_memory(src, "b.data-00001-of-00002", s1, sl1, &err);
			st = fb_tf_add_bundle(src, fi, &err);
			fb_source_close(src);
			tried++;
			if (!clean_error(st, &err, "b.index"))
			{
				bad++;
				fprintf(stderr, "tf cut at %zu: status %d: %s\n", cut, st, err.msg);
			}
		}
		CHECK(bad == 0, "tf index truncations: %d of %d not a clean error", bad, tried);

		bad = tried = 0;
		for (size_t i = 0; i < len; i++)
		{
			b[i] ^= 0x08;
			src = fb_source_new("mem", "test");
			fi = fb_source_add_memory(src, "b.index", b, len, &err);
			fb_source_add_memory(src, "b.data-00000-of-00002", s0, sl, &err);
			fb_source_add_memory(src, "b.data-00001-of-00002", s1, sl1, &err);
			st = fb_tf_add_bundle(src, fi, &err);
			if (st == FB_OK)
				st = fb_source_finish(src, &err);
			fb_source_close(src);
			b[i] ^= 0x08;
			tried++;
			/* only the footer's padding is outside every checksum */
			if (!(clean_error(st, &err, "b.index") || (st == FB_OK && i >= len - 48 && i < len - 8)))
			{
				bad++;
				fprintf(stderr, "tf flip at %zu: status %d: %s\n", i, st, err.msg);
			}
		}
		CHECK(bad == 0, "tf index flips: %d of %d not refused", bad, tried);

		/* a tensor byte changed in a shard: its CRC-32C catches it */
		s1[sl1 / 2] ^= 1;
		{
			double		sum;
			fb_status	rs;

			src = NULL;
			rs = read_all(K_TF, "b.index", b, len, "b.data-00001-of-00002", s1, sl1, &sum, &err);
			/* shard 0 is not among the memory files: it comes from "mem/" and fails to open */
			CHECK(rs == FB_ERR_IO || rs == FB_ERR_CORRUPT, "tf shard: %d %s", rs, err.msg);
		}
		src = fb_source_new("mem", "test");
		fi = fb_source_add_memory(src, "b.index", b, len, &err);
		fb_source_add_memory(src, "b.data-00000-of-00002", s0, sl, &err);
		fb_source_add_memory(src, "b.data-00001-of-00002", s1, sl1, &err);
		st = fb_tf_add_bundle(src, fi, &err);
		if (st == FB_OK)
			st = fb_source_finish(src, &err);
		for (size_t i = 0; st == FB_OK && i < src->n_tensors; i++)
		{
			float	   *v2 = malloc((size_t) src->tensors[i].n_elems * sizeof(float) + 4);

			st = fb_source_read_f32(src, &src->tensors[i], v2, &err);
			free(v2);
		}
		CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "CRC-32C mismatch") != NULL &&
			  strstr(err.msg, "data-00001-of-00002") != NULL, "tf tensor CRC: %s", err.msg);
		fb_source_close(src);
		free(s0);
		free(s1);
	}
	free(b);
}

/* ------------------------------------------------------------------------
 * Hand-built TensorFlow tables
 * ------------------------------------------------------------------------
 */

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t		n = 0;

	while (v >= 0x80)
	{
		p[n++] = (uint8_t) (v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t) v;
	return n;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

/* Appends a block of entries (keys[i], vals[i]), one restart point, and
 * its trailer of type `type`; returns its handle via off/size. */
static size_t
put_block(uint8_t *out, size_t pos, int n, const char *const *keys,
		  const uint8_t *const *vals, const size_t *vlens, uint8_t type,
		  size_t *off, size_t *size)
{
	size_t		start = pos;
	uint32_t	crc;

	for (int i = 0; i < n; i++)
	{
		size_t		kl = strlen(keys[i]);

		pos += put_varint(out + pos, 0);
		pos += put_varint(out + pos, kl);
		pos += put_varint(out + pos, vlens[i]);
		memcpy(out + pos, keys[i], kl);
		pos += kl;
		memcpy(out + pos, vals[i], vlens[i]);
		pos += vlens[i];
	}
	put32(out + pos, 0);		/* restart at 0 */
	put32(out + pos + 4, 1);	/* one restart */
	pos += 8;
	*off = start;
	*size = pos - start;
	out[pos] = type;
	crc = fb_crc32c_update(0, out + start, *size + 1);
	put32(out + pos + 1, fb_crc32c_mask(crc));
	return pos + 5;
}

/* A whole .index with the given (key, value) entries in one data block. */
static size_t
make_table(uint8_t *out, int n, const char *const *keys, const uint8_t *const *vals,
		   const size_t *vlens, uint8_t data_type)
{
	size_t		pos = 0,
				doff,
				dsize,
				moff,
				msize,
				ioff,
				isize,
				hl;
	uint8_t		handle[24];
	const char *ikey[1] = {"\xff"};
	const uint8_t *ival[1] = {handle};

	pos = put_block(out, pos, n, keys, vals, vlens, data_type, &doff, &dsize);
	pos = put_block(out, pos, 0, NULL, NULL, NULL, 0, &moff, &msize);
	hl = put_varint(handle, doff);
	hl += put_varint(handle + hl, dsize);
	pos = put_block(out, pos, 1, ikey, ival, &hl, 0, &ioff, &isize);
	memset(out + pos, 0, 48);
	{
		size_t		f = put_varint(out + pos, moff);

		f += put_varint(out + pos + f, msize);
		f += put_varint(out + pos + f, ioff);
		put_varint(out + pos + f, isize);
	}
	memcpy(out + pos + 40, "\x57\xfb\x80\x8b\x24\x75\x47\xdb", 8);
	return pos + 48;
}

static void
test_tf_tables(void)
{
	static const uint8_t header[] = {0x08, 0x01};	/* num_shards 1 */
	static const uint8_t big_header[] = {0x08, 0x80, 0x80, 0x04};	/* 65536 shards */
	/* dtype float, shape [2^62, 16], offset 0, size 64 */
	static const uint8_t overflow[] = {0x08, 0x01, 0x12, 0x10, 0x12, 0x0a, 0x08,
		0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x12, 0x02, 0x08, 0x10,
	0x28, 0x40};
	/* dtype float, shape [4], offset 8, size 16: past a 16-byte shard */
	static const uint8_t past[] = {0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x04, 0x20, 0x08, 0x28, 0x10};
	/* a group wire type */
	static const uint8_t group[] = {0x0b, 0x0c};
	uint8_t		out[4096];
	uint8_t		shard[16] = {0};
	const char *keys[2] = {"", "w"};
	const uint8_t *vals[2];
	size_t		vl[2];
	size_t		n;
	fb_error	err = {0};
	fb_status	st;

	struct
	{
		const char *label;
		const uint8_t *hdr;
		size_t		hl;
		const uint8_t *entry;
		size_t		el;
		uint8_t		type;
		fb_status	want;
		const char *what;
	}			cases[] = {
		{"valid", header, 2, past + 0, 0, 0, FB_OK, ""},
		{"shape overflow", header, 2, overflow, sizeof(overflow), 0, FB_ERR_CORRUPT, "overflows"},
		{"past the shard", header, 2, past, sizeof(past), 0, FB_ERR_CORRUPT, "past the end"},
		{"group field", header, 2, group, sizeof(group), 0, FB_ERR_CORRUPT, "malformed"},
		{"65536 shards", big_header, 4, past, 0, 0, FB_ERR_CORRUPT, "shards"},
		{"snappy block", header, 2, past, sizeof(past), 1, FB_ERR_UNSUPPORTED, "Snappy"},
		{"unknown compression", header, 2, past, sizeof(past), 7, FB_ERR_CORRUPT, "compression"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int			ne = cases[i].el > 0 ? 2 : 1;

		vals[0] = cases[i].hdr;
		vl[0] = cases[i].hl;
		vals[1] = cases[i].entry;
		vl[1] = cases[i].el;
		n = make_table(out, ne, keys, vals, vl, cases[i].type);
		st = read_all(K_TF, "t.index", out, n, "t.data-00000-of-00001", shard, sizeof(shard), NULL, &err);
		CHECK(st == cases[i].want, "%s: status %d: %s", cases[i].label, st, err.msg);
		if (cases[i].want != FB_OK)
			CHECK(strstr(err.msg, "mem/t.") != NULL && strstr(err.msg, cases[i].what) != NULL,
				  "%s: message: %s", cases[i].label, err.msg);
	}

	/* keys out of order */
	{
		const char *k2[3] = {"", "b", "a"};
		const uint8_t *v2[3] = {header, past, past};
		size_t		l2[3] = {2, sizeof(past), sizeof(past)};

		n = make_table(out, 3, k2, v2, l2, 0);
		st = read_all(K_TF, "t.index", out, n, "t.data-00000-of-00001", shard, sizeof(shard), NULL, &err);
		CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "out of order") != NULL, "order: %s", err.msg);
	}

	/* restart count larger than the block */
	vals[0] = header;
	vl[0] = 2;
	n = make_table(out, 1, keys, vals, vl, 0);
	out[11] = 0xff;				/* the data block's restart count */
	st = read_all(K_TF, "t.index", out, n, "t.data-00000-of-00001", shard, sizeof(shard), NULL, &err);
	CHECK(st == FB_ERR_CORRUPT, "restarts: %d %s", st, err.msg);

	/* an index that is not a table at all */
	memset(out, 'x', 100);
	st = read_all(K_TF, "t.index", out, 100, "t.data-00000-of-00001", shard, sizeof(shard), NULL, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "magic") != NULL, "magic: %s", err.msg);
}

/* ------------------------------------------------------------------------
 * Directories
 * ------------------------------------------------------------------------
 */

static void
run(const char *cmd)
{
	if (system(cmd) != 0)
		fprintf(stderr, "command failed: %s\n", cmd);
}

static void
expect_dir(const char *dir, fb_status want, const char *what)
{
	fb_source  *src = NULL;
	fb_error	err = {0};
	fb_status	st = fb_source_open_dir(dir, &src, &err);

	CHECK(st == want, "%s: status %d: %s", what, st, err.msg);
	if (want != FB_OK)
		CHECK(strstr(err.msg, what) != NULL, "message names %s: %s", what, err.msg);
	fb_source_close(src);
}

static void
test_directories(void)
{
	char		tmp[] = "/tmp/finbert-weights-XXXXXX";
	char		cmd[1024];

	if (mkdtemp(tmp) == NULL)
		return;
	/* a shard name leaving the directory */
	snprintf(cmd, sizeof(cmd), "cp " FIXTURES "st_sharded/* %s/ && sed -i 's/\"model-00001-of-00004.safetensors\"/\"..\\/model-00001-of-00004.safetensors\"/' %s/model.safetensors.index.json", tmp, tmp);
	run(cmd);
	expect_dir(tmp, FB_ERR_CORRUPT, "model.safetensors.index.json");

	/* a weight map naming a shard that lacks the tensor */
	snprintf(cmd, sizeof(cmd), "cp " FIXTURES "st_sharded/* %s/ && sed -i '0,/00001-of-00004.safetensors/s//00004-of-00004.safetensors/' %s/model.safetensors.index.json", tmp, tmp);
	run(cmd);
	expect_dir(tmp, FB_ERR_CORRUPT, "is not in");

	/* a missing shard */
	snprintf(cmd, sizeof(cmd), "rm -f %s/* && cp " FIXTURES "bin_sharded_albert/* %s/ && rm %s/pytorch_model-00002-of-00004.bin", tmp, tmp, tmp);
	run(cmd);
	expect_dir(tmp, FB_ERR_IO, "pytorch_model-00002-of-00004.bin");

	/* a TensorFlow data shard missing */
	snprintf(cmd, sizeof(cmd), "rm -f %s/* && cp " FIXTURES "tf_bert/* %s/ && rm %s/bert_model.ckpt.data-00001-of-00002", tmp, tmp, tmp);
	run(cmd);
	expect_dir(tmp, FB_ERR_IO, "bert_model.ckpt.data-00001-of-00002");

	/* two TensorFlow checkpoints: the "checkpoint" file decides */
	snprintf(cmd, sizeof(cmd), "rm -f %s/* && cp " FIXTURES "tf_bert/* %s/ && cp %s/bert_model.ckpt.index %s/other.ckpt.index", tmp, tmp, tmp, tmp);
	run(cmd);
	expect_dir(tmp, FB_OK, "");
	snprintf(cmd, sizeof(cmd), "rm %s/checkpoint", tmp);
	run(cmd);
	expect_dir(tmp, FB_ERR_CORRUPT, "TensorFlow checkpoints");

	/* nothing at all */
	snprintf(cmd, sizeof(cmd), "rm -f %s/*", tmp);
	run(cmd);
	expect_dir(tmp, FB_ERR_IO, "no weights");

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	run(cmd);
}

static void
test_crc(void)
{
	uint8_t		buf[1000];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t) (i * 131 + 7);
	/* the standard check values of "123456789" */
	CHECK(fb_crc32_update(0, (const uint8_t *) "123456789", 9) == 0xCBF43926u, "crc32 check value");
	CHECK(fb_crc32c_update(0, (const uint8_t *) "123456789", 9) == 0xE3069283u, "crc32c check value");
	/* instruction and table agree at every length and alignment */
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n < 200; n += 7)
			CHECK(fb_crc32c_update(0, buf + off, n) == fb_crc32c_update_portable(0, buf + off, n),
				  "crc32c paths at %zu+%zu", off, n);
	/* pieces give the CRC of the whole */
	CHECK(fb_crc32_update(fb_crc32_update(0, buf, 333), buf + 333, 667) == fb_crc32_update(0, buf, 1000),
		  "crc32 in pieces");
}

int
main(void)
{
	test_crc();
	test_code_execution();
	test_pickle_vm();
	test_views();
	test_truncations();
	test_tf_tables();
	test_directories();
	return fbt_finish("weight_files");
}
