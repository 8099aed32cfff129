/*
 * test_safetensors.c — the safetensors reader against files written by the
 * reference package (test/data/safetensors, from
 * tools/gen_safetensors_fixtures.py) and against one hand-built negative
 * image per check of the reader.
 *
 * Every negative case asserts the exact status, that no result is returned
 * and that the message names the file and the problem.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fb_test.h"
#include "formats/fb_safetensors.h"

#define DATA_DIR "test/data/safetensors"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------
 */

/* A growable byte buffer for building images. */
typedef struct buf
{
	uint8_t    *p;
	size_t		len;
	size_t		cap;
} buf;

static void
buf_put(buf *b, const void *bytes, size_t n)
{
	if (b->len + n > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
		{
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, bytes, n);
	b->len += n;
}

static void
buf_str(buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void
buf_u64(buf *b, uint64_t v)
{
	uint8_t		le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t) (v >> (8 * i));
	buf_put(b, le, 8);
}

/* An image: prefix declaring hlen, hlen header bytes, data_len zero bytes. */
static buf
image_raw(uint64_t declared, const char *hdr, size_t hlen, size_t data_len)
{
	buf			b = {NULL, 0, 0};
	uint8_t    *zeros = calloc(1, data_len + 1);

	buf_u64(&b, declared);
	buf_put(&b, hdr, hlen);
	buf_put(&b, zeros, data_len);
	free(zeros);
	return b;
}

static buf
image(const char *hdr, size_t data_len)
{
	return image_raw(strlen(hdr), hdr, strlen(hdr), data_len);
}

/*
 * Parses an image and checks the failure: status, message with the file
 * name (the label) and the needle.
 */
static void
expect_fail_buf(const uint8_t *p, size_t len, fb_status want,
				const char *needle, const char *label)
{
	fb_safetensors *st = (fb_safetensors *) 0x1;
	fb_error	err;
	fb_status	got;
	char		quoted[300];

	memset(&err, 0, sizeof(err));
	got = fb_safetensors_parse(p, len, label, &st, &err);
	snprintf(quoted, sizeof(quoted), "\"%s\"", label);
	CHECK(got == want, "%s: status %d (%s), want %d: %s", label, (int) got,
		  fb_status_name(got), (int) want, err.msg);
	CHECK(err.status == want, "%s: err.status %d", label, (int) err.status);
	CHECK(st == NULL, "%s: result not NULL on failure", label);
	CHECK(strstr(err.msg, quoted) != NULL, "%s: message does not name the file: %s",
		  label, err.msg);
	CHECK(strstr(err.msg, needle) != NULL, "%s: message lacks \"%s\": %s",
		  label, needle, err.msg);
	CHECK(strchr(err.msg, '\n') == NULL, "%s: message is not one line", label);
	if (getenv("FBT_VERBOSE") != NULL)
		printf("%-32s %s\n", label, err.msg);
	if (got == FB_OK)
		fb_safetensors_close(st);
}

static void
expect_fail(buf b, fb_status want, const char *needle, const char *label)
{
	expect_fail_buf(b.p, b.len, want, needle, label);
	free(b.p);
}

/* A header that must parse; returns the result (caller closes). */
static fb_safetensors *
expect_ok_buf(const uint8_t *p, size_t len, const char *label)
{
	fb_safetensors *st = NULL;
	fb_error	err;
	fb_status	got;

	memset(&err, 0, sizeof(err));
	got = fb_safetensors_parse(p, len, label, &st, &err);
	CHECK(got == FB_OK && st != NULL, "%s: status %d: %s", label, (int) got,
		  err.msg);
	return got == FB_OK ? st : NULL;
}

static void
expect_ok(buf b, size_t n_tensors, const char *label)
{
	fb_safetensors *st = expect_ok_buf(b.p, b.len, label);

	if (st != NULL)
	{
		CHECK(st->n_tensors == n_tensors, "%s: %zu tensors, want %zu", label,
			  st->n_tensors, n_tensors);
		fb_safetensors_close(st);
	}
	free(b.p);
}

static uint32_t
f32_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Bit-exact comparison, so -0.0 and the sign of inf are checked too. */
#define CHECK_F32(got, want, what) \
	CHECK(f32_bits(got) == f32_bits(want), "%s: got %a (0x%08x), want %a (0x%08x)", \
		  what, (double) (got), f32_bits(got), (double) (want), f32_bits(want))

/* ------------------------------------------------------------------------
 * Files written by the reference package
 * ------------------------------------------------------------------------
 */

static void
check_floats_content(const fb_safetensors *st, const char *label)
{
	const fb_st_tensor *t;
	float		v[16];
	fb_error	err;
	static const char *const names[] = {
		"bert.embeddings.word_embeddings.weight", "bf16", "bool",
		"empty_f16_3x0", "empty_f32", "f16", "f32", "f64", "i16", "i32",
		"i64", "i8", "scalar", "u8", "层.权重"
	};

	CHECK(st->n_tensors == 15, "%s: %zu tensors", label, st->n_tensors);
	for (size_t i = 0; i < 15 && i < st->n_tensors; i++)
	{
		CHECK(strcmp(st->tensors[i].name, names[i]) == 0,
			  "%s: tensor %zu is %s, want %s", label, i, st->tensors[i].name,
			  names[i]);
		CHECK(fb_safetensors_find(st, names[i]) == &st->tensors[i],
			  "%s: find(%s)", label, names[i]);
	}
	CHECK(fb_safetensors_find(st, "f3") == NULL, "find of a prefix");
	CHECK(fb_safetensors_find(st, "f32x") == NULL, "find of an extension");
	CHECK(fb_safetensors_find(st, "") == NULL, "find of the empty name");
	CHECK(fb_safetensors_find(st, "__metadata__") == NULL, "metadata is no tensor");
	CHECK(fb_safetensors_find(NULL, "f32") == NULL, "find on NULL");

	/* F32: bits copied exactly, subnormals included */
	t = fb_safetensors_find(st, "f32");
	CHECK(t != NULL && t->dtype == FB_DT_F32 && t->ndim == 2 &&
		  t->shape[0] == 2 && t->shape[1] == 5 && t->n_elems == 10 &&
		  t->nbytes == 40, "%s: f32 geometry", label);
	if (t != NULL && fb_tensor_to_f32(t, v, &err) == FB_OK)
	{
		CHECK_F32(v[0], 0.0f, "f32[0]");
		CHECK_F32(v[1], -0.0f, "f32[1]");
		CHECK_F32(v[2], 1.5f, "f32[2]");
		CHECK_F32(v[3], -2.25f, "f32[3]");
		CHECK_F32(v[4], 0x1p-149f, "f32 smallest subnormal");
		CHECK_F32(v[5], 0x1p-130f, "f32 subnormal");
		CHECK_F32(v[6], INFINITY, "f32 inf");
		CHECK_F32(v[7], -INFINITY, "f32 -inf");
		CHECK(isnan(v[8]), "f32 nan: %g", (double) v[8]);
		CHECK_F32(v[9], 0x1.fffffep127f, "f32 max");
	}
	else
		CHECK(0, "f32 conversion");

	/* F16 */
	t = fb_safetensors_find(st, "f16");
	CHECK(t != NULL && t->dtype == FB_DT_F16 && t->ndim == 1 &&
		  t->n_elems == 11 && t->nbytes == 22, "%s: f16 geometry", label);
	if (t != NULL && fb_tensor_to_f32(t, v, &err) == FB_OK)
	{
		CHECK_F32(v[0], 0.0f, "f16[0]");
		CHECK_F32(v[1], -0.0f, "f16 -0");
		CHECK_F32(v[2], 1.0f, "f16 1");
		CHECK_F32(v[3], -65504.0f, "f16 -max");
		CHECK_F32(v[4], 0x1p-24f, "f16 smallest subnormal");
		CHECK_F32(v[5], 0x1p-15f, "f16 subnormal");
		CHECK_F32(v[6], 0x1p-14f, "f16 smallest normal");
		CHECK_F32(v[7], INFINITY, "f16 inf");
		CHECK_F32(v[8], -INFINITY, "f16 -inf");
		CHECK(isnan(v[9]), "f16 nan: %g", (double) v[9]);
		CHECK_F32(v[10], 0.333251953125f, "f16 full mantissa");
	}
	else
		CHECK(0, "f16 conversion");

	/* BF16 */
	t = fb_safetensors_find(st, "bf16");
	CHECK(t != NULL && t->dtype == FB_DT_BF16 && t->n_elems == 9 &&
		  t->nbytes == 18, "%s: bf16 geometry", label);
	if (t != NULL && fb_tensor_to_f32(t, v, &err) == FB_OK)
	{
		CHECK_F32(v[0], 1.0f, "bf16 1");
		CHECK_F32(v[1], -2.0f, "bf16 -2");
		CHECK_F32(v[2], 0x1p-133f, "bf16 smallest subnormal");
		CHECK_F32(v[3], 0x1p-126f, "bf16 smallest normal");
		CHECK_F32(v[4], INFINITY, "bf16 inf");
		CHECK_F32(v[5], -INFINITY, "bf16 -inf");
		CHECK(isnan(v[6]), "bf16 nan: %g", (double) v[6]);
		CHECK_F32(v[7], 0x1.8p100f, "bf16 large");
		CHECK_F32(v[8], 0.15625f, "bf16 fraction");
	}
	else
		CHECK(0, "bf16 conversion");

	/* F64 narrowed to fp32 */
	t = fb_safetensors_find(st, "f64");
	CHECK(t != NULL && t->dtype == FB_DT_F64 && t->n_elems == 6 &&
		  t->nbytes == 48, "%s: f64 geometry", label);
	if (t != NULL && fb_tensor_to_f32(t, v, &err) == FB_OK)
	{
		CHECK_F32(v[0], (float) (1.0 / 3.0), "f64 1/3");
		CHECK_F32(v[1], INFINITY, "f64 overflow");
		CHECK_F32(v[2], -INFINITY, "f64 -overflow");
		CHECK_F32(v[3], 0.0f, "f64 underflow");
		CHECK(isnan(v[4]), "f64 nan: %g", (double) v[4]);
		CHECK_F32(v[5], -1.0f, "f64 -1");
	}
	else
		CHECK(0, "f64 conversion");

	/* zero-element tensors, a scalar, a 2-D weight, a UTF-8 name */
	t = fb_safetensors_find(st, "empty_f32");
	CHECK(t != NULL && t->ndim == 1 && t->shape[0] == 0 && t->n_elems == 0 &&
		  t->nbytes == 0 && fb_tensor_to_f32(t, v, &err) == FB_OK,
		  "%s: empty_f32", label);
	t = fb_safetensors_find(st, "empty_f16_3x0");
	CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 0 &&
		  t->n_elems == 0 && t->nbytes == 0 &&
		  fb_tensor_to_f32(t, v, &err) == FB_OK, "%s: empty_f16_3x0", label);
	t = fb_safetensors_find(st, "scalar");
	CHECK(t != NULL && t->ndim == 0 && t->n_elems == 1 && t->nbytes == 4 &&
		  fb_tensor_to_f32(t, v, &err) == FB_OK && v[0] == 42.0f,
		  "%s: scalar", label);
	t = fb_safetensors_find(st, "bert.embeddings.word_embeddings.weight");
	CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 2 &&
		  fb_tensor_to_f32(t, v, &err) == FB_OK && v[0] == 0.0f &&
		  v[5] == 1.25f, "%s: 2-D weight", label);
	t = fb_safetensors_find(st, "层.权重");
	CHECK(t != NULL && fb_tensor_to_f32(t, v, &err) == FB_OK && v[0] == 7.0f,
		  "%s: UTF-8 name", label);

	/* integer tensors: geometry and raw bytes, no float conversion */
	t = fb_safetensors_find(st, "i64");
	if (t != NULL)
	{
		int64_t		x[2];

		CHECK(t->dtype == FB_DT_I64 && t->n_elems == 2 && t->nbytes == 16,
			  "%s: i64 geometry", label);
		memcpy(x, t->data, sizeof(x));
		CHECK(x[0] == -1 && x[1] == ((int64_t) 1 << 40), "i64 values");
		memset(&err, 0, sizeof(err));
		CHECK(fb_tensor_to_f32(t, v, &err) == FB_ERR_UNSUPPORTED &&
			  err.status == FB_ERR_UNSUPPORTED &&
			  strstr(err.msg, "I64") != NULL && strstr(err.msg, "\"i64\"") != NULL,
			  "i64 to f32: %s", err.msg);
	}
	else
		CHECK(0, "i64 missing");
	t = fb_safetensors_find(st, "i32");
	CHECK(t != NULL && t->dtype == FB_DT_I32 && t->nbytes == 8, "i32");
	t = fb_safetensors_find(st, "i16");
	CHECK(t != NULL && t->dtype == FB_DT_I16 && t->nbytes == 4, "i16");
	t = fb_safetensors_find(st, "i8");
	CHECK(t != NULL && t->dtype == FB_DT_I8 && t->nbytes == 2 &&
		  (int8_t) t->data[0] == -128 && t->data[1] == 127, "i8");
	t = fb_safetensors_find(st, "u8");
	CHECK(t != NULL && t->dtype == FB_DT_U8 && t->nbytes == 3 &&
		  t->data[1] == 255 && t->data[2] == 7, "u8");
	t = fb_safetensors_find(st, "bool");
	CHECK(t != NULL && t->dtype == FB_DT_BOOL && t->nbytes == 3 &&
		  t->data[0] == 1 && t->data[1] == 0 && t->data[2] == 1, "bool");
	if (t != NULL)
		CHECK(fb_tensor_to_f32(t, v, &err) == FB_ERR_UNSUPPORTED, "bool to f32");
}

static void
test_reference_files(void)
{
	fb_safetensors *st = NULL;
	fb_error	err;
	fb_status	s;
	uint8_t    *img,
			   *odd;
	size_t		len = 0;

	memset(&err, 0, sizeof(err));
	s = fb_safetensors_open(DATA_DIR "/floats.safetensors", &st, &err);
	CHECK_STATUS(s, err);
	if (s == FB_OK)
	{
		CHECK(st->owns_map == 1 && st->map_len == 1204, "mapping of floats");
		CHECK(strcmp(st->path, DATA_DIR "/floats.safetensors") == 0, "path kept");
		check_floats_content(st, "floats (mapped)");
		fb_safetensors_close(st);
	}

	/* same bytes from memory, and at an odd address: unaligned sources */
	img = (uint8_t *) fbt_read_file(DATA_DIR "/floats.safetensors", &len);
	CHECK(img != NULL, "read floats");
	if (img != NULL)
	{
		st = expect_ok_buf(img, len, "floats (memory)");
		if (st != NULL)
		{
			CHECK(st->owns_map == 0 && st->map == img, "caller buffer kept");
			check_floats_content(st, "floats (memory)");
			fb_safetensors_close(st);
		}
		odd = malloc(len + 1);
		memcpy(odd + 1, img, len);
		st = expect_ok_buf(odd + 1, len, "floats (odd address)");
		if (st != NULL)
		{
			check_floats_content(st, "floats (odd address)");
			fb_safetensors_close(st);
		}
		free(odd);

		/* truncated anywhere: never accepted */
		expect_fail_buf(img, len - 1, FB_ERR_CORRUPT, "past the data section",
						"trunc_data.safetensors");
		expect_fail_buf(img, 500, FB_ERR_CORRUPT, "runs past the end",
						"trunc_header.safetensors");
		for (size_t cut = 0; cut < len; cut++)
		{
			fb_safetensors *r = NULL;

			s = fb_safetensors_parse(img, cut, "cut", &r, &err);
			if (s != FB_ERR_CORRUPT || r != NULL)
			{
				CHECK(0, "truncation at %zu: status %d", cut, (int) s);
				fb_safetensors_close(r);
				break;
			}
		}
		free(img);
	}

	s = fb_safetensors_open(DATA_DIR "/metadata_only.safetensors", &st, &err);
	CHECK_STATUS(s, err);
	if (s == FB_OK)
	{
		CHECK(st->n_tensors == 0 && fb_safetensors_find(st, "format") == NULL,
			  "metadata only");
		fb_safetensors_close(st);
	}
	s = fb_safetensors_open(DATA_DIR "/empty.safetensors", &st, &err);
	CHECK_STATUS(s, err);
	if (s == FB_OK)
	{
		CHECK(st->n_tensors == 0, "empty");
		fb_safetensors_close(st);
	}

	/* dtypes the reference writes but finbert does not read */
	memset(&err, 0, sizeof(err));
	st = (fb_safetensors *) 0x1;
	s = fb_safetensors_open(DATA_DIR "/unsupported_f8_e4m3.safetensors", &st, &err);
	CHECK(s == FB_ERR_UNSUPPORTED && st == NULL &&
		  strstr(err.msg, "unsupported_f8_e4m3.safetensors") != NULL &&
		  strstr(err.msg, "\"F8_E4M3\"") != NULL && strstr(err.msg, "\"w\"") != NULL,
		  "F8_E4M3: %d %s", (int) s, err.msg);
	memset(&err, 0, sizeof(err));
	s = fb_safetensors_open(DATA_DIR "/unsupported_u16.safetensors", &st, &err);
	CHECK(s == FB_ERR_UNSUPPORTED &&
		  strstr(err.msg, "unsupported_u16.safetensors") != NULL &&
		  strstr(err.msg, "\"U16\"") != NULL, "U16: %d %s", (int) s, err.msg);
}

/* ------------------------------------------------------------------------
 * Accepted edge cases (the reference accepts them too)
 * ------------------------------------------------------------------------
 */

static void
test_accepted(void)
{
	fb_safetensors *st;
	char	   *h;
	buf			b;

	expect_ok(image("{}", 0), 0, "empty_object");
	expect_ok(image("{}      ", 0), 0, "padded");
	expect_ok(image("{} \t\r\n", 0), 0, "trailing_json_whitespace");
	expect_ok(image(" \n{}", 0), 0, "leading_whitespace");
	expect_ok(image("{ \"a\" : { \"dtype\" : \"U8\" , \"shape\" : [ 1 ] , "
					"\"data_offsets\" : [ 0 , 1 ] } }", 1), 1, "spaces_everywhere");
	expect_ok(image("{\"__metadata__\":null,\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
					"\"data_offsets\":[0,1]}}", 1), 1, "metadata_null");
	expect_ok(image("{\"__metadata__\":{},\"a\":{\"data_offsets\":[0,1],"
					"\"shape\":[1],\"dtype\":\"U8\"}}", 1), 1, "fields_any_order");
	expect_ok(image("{\"__metadata__\":{\"a\":\"x\",\"b\":\"\\u0000\",\"\\u0000\":\"\"}}", 0),
			  0, "metadata_escapes");

	/* file order differs from offset order */
	expect_ok(image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
					"\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8),
			  2, "unsorted_offsets");

	/* zero-size tensors may share an offset with anything */
	expect_ok(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
					"\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
					"\"c\":{\"dtype\":\"U8\",\"shape\":[5,0],\"data_offsets\":[1,1]},"
					"\"d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1,1]}}", 1),
			  4, "zero_size_shared_offsets");

	/* 2^53 is the largest integer, and a zero dimension makes it empty */
	expect_ok(image("{\"a\":{\"dtype\":\"F64\",\"shape\":[9007199254740992,0],"
					"\"data_offsets\":[0,0]}}", 0), 1, "dim_2p53_times_0");

	/* rank FB_ST_MAX_DIMS */
	expect_ok(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1],"
					"\"data_offsets\":[0,1]}}", 1), 1, "rank_8");

	/* escapes in names decode to UTF-8: 中, U+1F600, newline */
	b = image("{\"\\u4e2d\\ud83d\\ude00\\n\\/\":{\"dtype\":\"U8\",\"shape\":[1],"
			  "\"data_offsets\":[0,1]}}", 1);
	st = expect_ok_buf(b.p, b.len, "escaped_name");
	if (st != NULL)
	{
		CHECK(fb_safetensors_find(st, "\xe4\xb8\xad\xf0\x9f\x98\x80\n/") != NULL,
			  "escaped name decoded");
		fb_safetensors_close(st);
	}
	free(b.p);

	/* an escaped dtype is still the dtype */
	expect_ok(image("{\"a\":{\"dtype\":\"F\\u00332\",\"shape\":[1],"
					"\"data_offsets\":[0,4]}}", 4), 1, "escaped_dtype");

	/* a name of exactly FB_ST_MAX_NAME_BYTES */
	h = malloc(FB_ST_MAX_NAME_BYTES + 128);
	memset(h, 0, FB_ST_MAX_NAME_BYTES + 128);
	h[0] = '{';
	h[1] = '"';
	memset(h + 2, 'n', FB_ST_MAX_NAME_BYTES);
	strcat(h, "\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
	expect_ok(image(h, 0), 1, "name_at_limit");
	free(h);
}

/* FB_ST_MAX_TENSORS zero-size tensors, then one more. */
static void
test_tensor_count(void)
{
	buf			b = {NULL, 0, 0};
	char		ent[96];
	buf			img;

	buf_str(&b, "{");
	for (int i = 0; i < FB_ST_MAX_TENSORS; i++)
	{
		snprintf(ent, sizeof(ent),
				 "%s\"t%06d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
				 i ? "," : "", i);
		buf_str(&b, ent);
	}
	buf_str(&b, "}");
	img = image_raw(b.len, (const char *) b.p, b.len, 0);
	expect_ok(img, FB_ST_MAX_TENSORS, "tensors_at_limit");

	b.len--;
	buf_str(&b, ",\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
	expect_fail(image_raw(b.len, (const char *) b.p, b.len, 0), FB_ERR_CORRUPT,
				"more than 100000 tensors", "too_many_tensors.safetensors");
	free(b.p);
}

/* FB_ST_MAX_METADATA_ENTRIES + 1 metadata entries. */
static void
test_metadata_count(void)
{
	buf			b = {NULL, 0, 0};
	char		ent[64];

	buf_str(&b, "{\"__metadata__\":{");
	for (int i = 0; i <= FB_ST_MAX_METADATA_ENTRIES; i++)
	{
		snprintf(ent, sizeof(ent), "%s\"k%d\":\"v\"", i ? "," : "", i);
		buf_str(&b, ent);
	}
	buf_str(&b, "}}");
	expect_fail(image_raw(b.len, (const char *) b.p, b.len, 0), FB_ERR_CORRUPT,
				"more than 65536 entries", "too_many_metadata.safetensors");
	free(b.p);
}

/* ------------------------------------------------------------------------
 * One negative image per check
 * ------------------------------------------------------------------------
 */

#define T1(name, dtype, shape, b, e) \
	"\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void
test_prefix(void)
{
	uint8_t		seven[7] = {0};
	char		big[FB_ST_MAX_HEADER_BYTES / 1024];
	buf			b;

	expect_fail_buf(NULL, 0, FB_ERR_CORRUPT, "too short", "len0.safetensors");
	expect_fail_buf(seven, 7, FB_ERR_CORRUPT, "too short", "len7.safetensors");

	expect_fail(image_raw((uint64_t) 1 << 63, "{}", 2, 0), FB_ERR_CORRUPT,
				"over the limit", "hdr_2p63.safetensors");
	expect_fail(image_raw(UINT64_MAX, "{}", 2, 0), FB_ERR_CORRUPT,
				"over the limit", "hdr_2p64m1.safetensors");
	expect_fail(image_raw((uint64_t) FB_ST_MAX_HEADER_BYTES + 1, "{}", 2, 0),
				FB_ERR_CORRUPT, "over the limit", "hdr_limit_plus1.safetensors");

	/* file size - 7: one byte more than there is */
	b = image_raw(0, "{}  ", 4, 0);
	b.p[0] = (uint8_t) (b.len - 7);
	expect_fail(b, FB_ERR_CORRUPT, "runs past the end", "hdr_size_m7.safetensors");
	expect_fail(image_raw(3, "{}", 2, 0), FB_ERR_CORRUPT, "runs past the end",
				"hdr_past_end.safetensors");

	/* an empty header is no JSON object */
	expect_fail(image_raw(0, "", 0, 0), FB_ERR_CORRUPT, "not a JSON object",
				"hdr_empty.safetensors");

	/* a big header of spaces: within the limit, still no object */
	memset(big, ' ', sizeof(big));
	expect_fail(image_raw(sizeof(big), big, sizeof(big), 0), FB_ERR_CORRUPT,
				"not a JSON object", "hdr_spaces.safetensors");
}

static void
test_json(void)
{
	/* header not an object */
	expect_fail(image("[]", 0), FB_ERR_CORRUPT, "not a JSON object", "arr.safetensors");
	expect_fail(image("\"x\"", 0), FB_ERR_CORRUPT, "not a JSON object", "str.safetensors");
	expect_fail(image("1", 0), FB_ERR_CORRUPT, "not a JSON object", "num.safetensors");
	expect_fail(image("null", 0), FB_ERR_CORRUPT, "not a JSON object", "null.safetensors");
	expect_fail(image("\xef\xbb\xbf{}", 0), FB_ERR_CORRUPT, "not a JSON object",
				"bom.safetensors");

	/* invalid JSON */
	expect_fail(image("{", 0), FB_ERR_CORRUPT, "invalid JSON", "open.safetensors");
	expect_fail(image("{\"a\":", 0), FB_ERR_CORRUPT, "not a JSON object",
				"no_value.safetensors");
	expect_fail(image("{\"a\" {}}", 0), FB_ERR_CORRUPT, "expected ':'",
				"no_colon.safetensors");
	expect_fail(image("{,}", 0), FB_ERR_CORRUPT, "expected a key string",
				"lone_comma.safetensors");
	expect_fail(image("{'a':{}}", 0), FB_ERR_CORRUPT, "expected a key string",
				"single_quotes.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],}}", 0),
				FB_ERR_CORRUPT, "expected a key string", "trailing_comma.safetensors");
	expect_fail(image("{" T1("a", "U8", "[0]", 0, 0) ",}", 0), FB_ERR_CORRUPT,
				"expected a key string", "trailing_comma_top.safetensors");
	expect_fail(image("{" T1("a", "U8", "[0]", 0, 0) " " T1("b", "U8", "[0]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "expected ',' or '}'", "missing_comma.safetensors");
	expect_fail(image("{\"abc", 0), FB_ERR_CORRUPT, "unterminated string",
				"unterminated.safetensors");
	expect_fail(image("{\"a\tb\":{}}", 0), FB_ERR_CORRUPT, "control character",
				"raw_tab.safetensors");
	expect_fail(image("{\"a\\x\":{}}", 0), FB_ERR_CORRUPT, "invalid escape",
				"bad_escape.safetensors");
	expect_fail(image("{\"a\\u12\"}", 0), FB_ERR_CORRUPT, "hex digit",
				"short_u.safetensors");
	expect_fail(image("{\"a\\u12", 0), FB_ERR_CORRUPT, "truncated",
				"trunc_u.safetensors");
	expect_fail(image("{\"__metadata__\":nul}", 0), FB_ERR_CORRUPT, "invalid literal",
				"bad_literal.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[0 0],\"data_offsets\":[0,0]}}", 0),
				FB_ERR_CORRUPT, "expected ',' or ']'", "shape_no_comma.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}", 0),
				FB_ERR_CORRUPT, "invalid JSON", "unclosed.safetensors");

	/* trailing garbage (spaces are fine, see test_accepted) */
	expect_fail(image("{}x", 0), FB_ERR_CORRUPT, "trailing characters", "garbage.safetensors");
	expect_fail(image("{}{}", 0), FB_ERR_CORRUPT, "trailing characters",
				"two_objects.safetensors");
	expect_fail(image_raw(4, "{}\0\0", 4, 0), FB_ERR_CORRUPT, "trailing characters",
				"nul_padding.safetensors");
	expect_fail(image("{}  \f", 0), FB_ERR_CORRUPT, "trailing characters",
				"formfeed.safetensors");

	/* duplicate keys at every level */
	expect_fail(image("{" T1("a", "U8", "[1]", 0, 1) "," T1("a", "U8", "[0]", 1, 1) "}", 1),
				FB_ERR_CORRUPT, "duplicate tensor name \"a\"", "dup_name.safetensors");
	expect_fail(image("{" T1("a", "U8", "[1]", 0, 1) "," T1("\\u0061", "U8", "[0]", 1, 1) "}", 1),
				FB_ERR_CORRUPT, "duplicate tensor name \"a\"", "dup_name_escaped.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
					  "\"data_offsets\":[0,1]}}", 1),
				FB_ERR_CORRUPT, "duplicate key \"dtype\"", "dup_field.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"shape\":[1],"
					  "\"data_offsets\":[0,1]}}", 1),
				FB_ERR_CORRUPT, "duplicate key \"shape\"", "dup_shape.safetensors");
	expect_fail(image("{\"__metadata__\":{},\"__metadata__\":{}}", 0), FB_ERR_CORRUPT,
				"duplicate key \"__metadata__\"", "dup_metadata.safetensors");
	expect_fail(image("{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0),
				FB_ERR_CORRUPT, "duplicate key \"k\"", "dup_metadata_key.safetensors");

	/* entries with other keys or missing ones */
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
					  "\"offsets\":[0,1]}}", 1),
				FB_ERR_CORRUPT, "unknown key \"offsets\"", "unknown_key.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1),
				FB_ERR_CORRUPT, "missing \"data_offsets\"", "no_offsets.safetensors");
	expect_fail(image("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
				FB_ERR_CORRUPT, "missing \"dtype\"", "no_dtype.safetensors");
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1),
				FB_ERR_CORRUPT, "missing \"shape\"", "no_shape.safetensors");
	expect_fail(image("{\"a\":{}}", 0), FB_ERR_CORRUPT, "missing \"dtype\"",
				"empty_entry.safetensors");
	expect_fail(image("{\"a\":1}", 0), FB_ERR_CORRUPT, "entry is not a JSON object",
				"entry_number.safetensors");
	expect_fail(image("{\"a\":\"F32\"}", 0), FB_ERR_CORRUPT, "entry is not a JSON object",
				"entry_string.safetensors");
}

static void
test_dtype(void)
{
	expect_fail(image("{" T1("w", "C64", "[1]", 0, 8) "}", 8), FB_ERR_UNSUPPORTED,
				"tensor \"w\" has unsupported dtype \"C64\"", "c64.safetensors");
	expect_fail(image("{" T1("w", "F8_E4M3", "[1]", 0, 1) "}", 1), FB_ERR_UNSUPPORTED,
				"unsupported dtype \"F8_E4M3\"", "f8.safetensors");
	expect_fail(image("{" T1("w", "f32", "[1]", 0, 4) "}", 4), FB_ERR_UNSUPPORTED,
				"unsupported dtype \"f32\"", "lowercase.safetensors");
	expect_fail(image("{" T1("w", "", "[1]", 0, 4) "}", 4), FB_ERR_UNSUPPORTED,
				"unsupported dtype \"\"", "empty_dtype.safetensors");
	expect_fail(image("{" T1("w", "F32\\n\\u0001", "[1]", 0, 4) "}", 4), FB_ERR_UNSUPPORTED,
				"unsupported dtype \"F32\\x0A\\x01\"", "ctrl_dtype.safetensors");

	/* a file that is also malformed is corrupt, not unsupported */
	expect_fail(image("{" T1("w", "C64", "[1]", 0, 8) ",}", 8), FB_ERR_CORRUPT,
				"invalid JSON", "c64_and_syntax.safetensors");

	/* wrong JSON types for dtype */
	expect_fail(image("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
				FB_ERR_CORRUPT, "dtype is not a string", "dtype_number.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":[\"F32\"],\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
				FB_ERR_CORRUPT, "dtype is not a string", "dtype_array.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":null,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
				FB_ERR_CORRUPT, "dtype is not a string", "dtype_null.safetensors");
}

static void
test_shape(void)
{
	expect_fail(image("{" T1("w", "U8", "[-1]", 0, 0) "}", 0), FB_ERR_CORRUPT,
				"negative number", "neg_dim.safetensors");
	expect_fail(image("{" T1("w", "U8", "[-0]", 0, 0) "}", 0), FB_ERR_CORRUPT,
				"negative number", "neg_zero_dim.safetensors");
	expect_fail(image("{" T1("w", "U8", "[1.0]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"not an integer", "float_dim.safetensors");
	expect_fail(image("{" T1("w", "U8", "[1e0]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"not an integer", "exp_dim.safetensors");
	expect_fail(image("{" T1("w", "U8", "[01]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"leading zero", "leading_zero.safetensors");
	expect_fail(image("{" T1("w", "U8", "[\"1\"]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"expected a non-negative integer", "string_dim.safetensors");
	expect_fail(image("{" T1("w", "U8", "[true]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"expected a non-negative integer", "bool_dim.safetensors");
	expect_fail(image("{" T1("w", "U8", "1", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"shape is not an array", "shape_number.safetensors");
	expect_fail(image("{" T1("w", "U8", "[[1]]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"expected a non-negative integer", "shape_nested.safetensors");
	expect_fail(image("{" T1("w", "U8", "[1,]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"expected a non-negative integer", "shape_trailing_comma.safetensors");

	/* rank */
	expect_fail(image("{" T1("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1),
				FB_ERR_CORRUPT, "more than 8 dimensions", "rank9.safetensors");

	/* integers beyond 2^53 and beyond uint64 */
	expect_fail(image("{" T1("w", "U8", "[9007199254740993,0]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "larger than 2^53", "dim_2p53p1.safetensors");
	expect_fail(image("{" T1("w", "U8", "[0,18446744073709551616]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "larger than 2^53", "dim_2p64.safetensors");
	expect_fail(image("{" T1("w", "U8", "[0,99999999999999999999999999999999]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "larger than 2^53", "dim_huge.safetensors");

	/* products that wrap, to 0 in particular */
	expect_fail(image("{" T1("w", "F32", "[4294967296,4294967296]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "element count of the shape overflows",
				"wrap_2p64.safetensors");
	expect_fail(image("{" T1("w", "U8", "[65536,65536,65536,65536]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "element count of the shape overflows",
				"wrap_to_0.safetensors");
	expect_fail(image("{" T1("w", "U8", "[4294967296,4294967296,0]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "element count of the shape overflows",
				"wrap_before_0.safetensors");
	expect_fail(image("{" T1("w", "U8", "[9007199254740992,9007199254740992]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "element count of the shape overflows",
				"wrap_2p106.safetensors");

	/* element count fits, byte size wraps: 2^62 F32 elements = 2^64 bytes */
	expect_fail(image("{" T1("w", "F32", "[4611686018427387904]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "larger than 2^53", "bytes_dim.safetensors");
	expect_fail(image("{" T1("w", "F32", "[4194304,1099511627776]", 0, 0) "}", 0),
				FB_ERR_CORRUPT, "byte size of the shape overflows",
				"wrap_bytes_to_0.safetensors");
}

static void
test_offsets(void)
{
	expect_fail(image("{" T1("w", "F32", "[1]", 0, 8) "}", 4), FB_ERR_CORRUPT,
				"past the data section", "end_past.safetensors");
	expect_fail(image("{" T1("w", "U8", "[0]", 9007199254740992, 9007199254740992) "}", 0),
				FB_ERR_CORRUPT, "past the data section", "begin_past.safetensors");
	expect_fail(image("{" T1("w", "F32", "[1]", 8, 4) "}", 8), FB_ERR_CORRUPT,
				"begin 8 is after end 4", "begin_gt_end.safetensors");
	expect_fail(image("{" T1("w", "F32", "[2]", 0, 4) "}", 4), FB_ERR_CORRUPT,
				"span 4 bytes, shape and dtype F32 need 8", "size_mismatch.safetensors");
	expect_fail(image("{" T1("w", "F16", "[3]", 0, 8) "}", 8), FB_ERR_CORRUPT,
				"need 6", "size_mismatch_big.safetensors");
	expect_fail(image("{" T1("w", "F32", "[]", 0, 0) "}", 0), FB_ERR_CORRUPT,
				"need 4", "scalar_no_bytes.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1),
				FB_ERR_CORRUPT, "exactly two integers", "offsets_one.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,1]}}", 1),
				FB_ERR_CORRUPT, "exactly two integers", "offsets_three.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[]}}", 1),
				FB_ERR_CORRUPT, "expected a non-negative integer", "offsets_empty.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":0}}", 1),
				FB_ERR_CORRUPT, "data_offsets is not an array", "offsets_number.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1),
				FB_ERR_CORRUPT, "negative number", "offsets_negative.safetensors");
	expect_fail(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}", 1),
				FB_ERR_CORRUPT, "not an integer", "offsets_float.safetensors");

	/* tiling of the data section */
	expect_fail(image("{" T1("a", "F32", "[2]", 0, 8) "," T1("b", "F32", "[2]", 4, 12) "}", 12),
				FB_ERR_CORRUPT, "tensor \"b\" (bytes 4 to 12) overlaps tensor \"a\"",
				"overlap.safetensors");
	expect_fail(image("{" T1("a", "F32", "[1]", 0, 4) "," T1("b", "F32", "[1]", 0, 4) "}", 4),
				FB_ERR_CORRUPT, "overlaps", "same_range.safetensors");
	expect_fail(image("{" T1("a", "F32", "[3]", 0, 12) "," T1("b", "F32", "[1]", 4, 8) "}", 12),
				FB_ERR_CORRUPT, "overlaps", "nested_range.safetensors");
	expect_fail(image("{" T1("a", "F32", "[1]", 0, 4) "," T1("b", "F32", "[1]", 8, 12) "}", 12),
				FB_ERR_CORRUPT, "hole of 4 bytes", "hole.safetensors");
	expect_fail(image("{" T1("a", "F32", "[1]", 4, 8) "}", 8), FB_ERR_CORRUPT,
				"hole of 4 bytes", "hole_at_start.safetensors");
	expect_fail(image("{" T1("a", "F32", "[1]", 0, 4) "}", 5), FB_ERR_CORRUPT,
				"1 trailing bytes", "trailing_bytes.safetensors");
	expect_fail(image("{}", 3), FB_ERR_CORRUPT, "3 trailing bytes",
				"trailing_no_tensors.safetensors");
	expect_fail(image("{" T1("a", "U8", "[0]", 2, 2) "}", 2), FB_ERR_CORRUPT,
				"hole of 2 bytes", "empty_tensor_hole.safetensors");
}

static void
test_metadata(void)
{
	expect_fail(image("{\"__metadata__\":{\"x\":1}}", 0), FB_ERR_CORRUPT,
				"value of \"x\" is not a string", "meta_number.safetensors");
	expect_fail(image("{\"__metadata__\":{\"x\":null}}", 0), FB_ERR_CORRUPT,
				"is not a string", "meta_null_value.safetensors");
	expect_fail(image("{\"__metadata__\":{\"x\":{\"y\":\"z\"}}}", 0), FB_ERR_CORRUPT,
				"is not a string", "meta_object_value.safetensors");
	expect_fail(image("{\"__metadata__\":[]}", 0), FB_ERR_CORRUPT,
				"\"__metadata__\" is not a JSON object", "meta_array.safetensors");
	expect_fail(image("{\"__metadata__\":\"pt\"}", 0), FB_ERR_CORRUPT,
				"\"__metadata__\" is not a JSON object", "meta_string.safetensors");
	expect_fail(image("{\"__metadata__\":{1:\"x\"}}", 0), FB_ERR_CORRUPT,
				"expected a key string", "meta_number_key.safetensors");
}

/* Nesting far deeper than the format: refused at the first level too deep. */
static void
test_nesting(void)
{
	const int	depth = 100000;
	const char *pre[] = {
		"{\"a\":",
		"{\"__metadata__\":{\"x\":",
		"{\"a\":{\"shape\":",
		"{\"a\":{\"dtype\":",
		"{\"a\":{\"data_offsets\":",
		"{\"__metadata__\":",
	};
	const char *needle[] = {
		"entry is not a JSON object",
		"is not a string",
		"expected a non-negative integer",
		"dtype is not a string",
		"expected a non-negative integer",
		"\"__metadata__\" is not a JSON object",
	};

	for (size_t k = 0; k < sizeof(pre) / sizeof(pre[0]); k++)
	{
		buf			b = {NULL, 0, 0};
		char		label[64];

		buf_str(&b, pre[k]);
		for (int i = 0; i < depth; i++)
			buf_str(&b, "[");
		for (int i = 0; i < depth; i++)
			buf_str(&b, "]");
		buf_str(&b, "}}");
		snprintf(label, sizeof(label), "deep%zu.safetensors", k);
		expect_fail(image_raw(b.len, (const char *) b.p, b.len, 0),
					FB_ERR_CORRUPT, needle[k], label);
		free(b.p);
	}
	expect_fail(image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
					  "\"x\":{\"y\":{\"z\":{}}}}}", 1),
				FB_ERR_CORRUPT, "unknown key \"x\"", "deep_unknown.safetensors");
}

static void
test_names(void)
{
	char	   *h;

	/* invalid UTF-8 anywhere in the header, names first */
	expect_fail(image("{\"a\xff\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8 at header byte 3",
				"utf8_ff.safetensors");
	expect_fail(image("{\"\xc0\xaf\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_overlong.safetensors");
	expect_fail(image("{\"\xe0\x80\xaf\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_overlong3.safetensors");
	expect_fail(image("{\"\xed\xa0\x80\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_surrogate.safetensors");
	expect_fail(image("{\"\xf4\x90\x80\x80\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_above_10ffff.safetensors");
	expect_fail(image("{\"\xe4\xb8\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_truncated.safetensors");
	expect_fail(image("{\"\x80\":{}}", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_continuation.safetensors");
	expect_fail(image("{}  \xe4", 0), FB_ERR_CORRUPT, "not valid UTF-8",
				"utf8_in_padding.safetensors");
	expect_fail(image("{\"__metadata__\":{\"k\":\"\xfe\"}}", 0), FB_ERR_CORRUPT,
				"not valid UTF-8", "utf8_in_metadata.safetensors");

	/* escapes that are not Unicode scalar values */
	expect_fail(image("{\"\\ud800\":{}}", 0), FB_ERR_CORRUPT, "unpaired high surrogate",
				"lone_high.safetensors");
	expect_fail(image("{\"\\ud800\\u0041\":{}}", 0), FB_ERR_CORRUPT,
				"unpaired high surrogate", "high_then_bmp.safetensors");
	expect_fail(image("{\"\\udc00\":{}}", 0), FB_ERR_CORRUPT, "unpaired low surrogate",
				"lone_low.safetensors");

	/* names finbert refuses although the reference would take them */
	expect_fail(image("{" T1("", "U8", "[1]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"empty tensor name", "empty_name.safetensors");
	expect_fail(image("{" T1("a\\u0000b", "U8", "[1]", 0, 1) "}", 1), FB_ERR_CORRUPT,
				"contains a NUL", "nul_name.safetensors");

	h = malloc(FB_ST_MAX_NAME_BYTES + 128);
	memset(h, 0, FB_ST_MAX_NAME_BYTES + 128);
	h[0] = '{';
	h[1] = '"';
	memset(h + 2, 'n', FB_ST_MAX_NAME_BYTES + 1);
	strcat(h, "\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
	expect_fail(image(h, 0), FB_ERR_CORRUPT, "1025 bytes, over the limit of 1024",
				"long_name.safetensors");
	free(h);

	/* names in messages are escaped and cut */
	expect_fail(image("{" T1("bad\\nname\\u0007\\\"", "U8", "[1]", 0, 2) "}", 2),
				FB_ERR_CORRUPT, "tensor \"bad\\x0Aname\\x07\\\"\"", "escaped_msg.safetensors");
}

/* fb_safetensors_open on paths that are not readable safetensors files. */
static void
test_open(void)
{
	char		dir[] = "/tmp/fb_st_test_XXXXXX";
	char		path[256];
	fb_safetensors *st = (fb_safetensors *) 0x1;
	fb_error	err;
	fb_status	s;
	uint8_t    *img;
	size_t		len = 0;
	FILE	   *f;

	memset(&err, 0, sizeof(err));
	s = fb_safetensors_open(DATA_DIR "/no_such.safetensors", &st, &err);
	CHECK(s == FB_ERR_IO && st == NULL && strstr(err.msg, "no_such.safetensors") &&
		  strstr(err.msg, strerror(ENOENT)), "missing file: %d %s", (int) s, err.msg);

	if (mkdtemp(dir) == NULL)
	{
		CHECK(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	memset(&err, 0, sizeof(err));
	s = fb_safetensors_open(dir, &st, &err);
	CHECK(s == FB_ERR_IO && strstr(err.msg, dir) && strstr(err.msg, "not a regular file"),
		  "directory: %d %s", (int) s, err.msg);

	/* a FIFO must not hang the open */
	snprintf(path, sizeof(path), "%s/fifo.safetensors", dir);
	if (mkfifo(path, 0600) == 0)
	{
		memset(&err, 0, sizeof(err));
		s = fb_safetensors_open(path, &st, &err);
		CHECK(s == FB_ERR_IO && strstr(err.msg, "not a regular file"),
			  "fifo: %d %s", (int) s, err.msg);
		unlink(path);
	}

	snprintf(path, sizeof(path), "%s/empty.safetensors", dir);
	f = fopen(path, "wb");
	if (f != NULL)
		fclose(f);
	memset(&err, 0, sizeof(err));
	s = fb_safetensors_open(path, &st, &err);
	CHECK(s == FB_ERR_CORRUPT && st == NULL && strstr(err.msg, path) &&
		  strstr(err.msg, "empty"), "empty file: %d %s", (int) s, err.msg);
	unlink(path);

	/* on-disk truncations of a reference file */
	img = (uint8_t *) fbt_read_file(DATA_DIR "/floats.safetensors", &len);
	if (img != NULL)
	{
		size_t		cuts[] = {7, 8, 100, len - 1};

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		{
			snprintf(path, sizeof(path), "%s/cut%zu.safetensors", dir, cuts[i]);
			f = fopen(path, "wb");
			if (f == NULL || fwrite(img, 1, cuts[i], f) != cuts[i])
				CHECK(0, "write %s", path);
			if (f != NULL)
				fclose(f);
			memset(&err, 0, sizeof(err));
			st = (fb_safetensors *) 0x1;
			s = fb_safetensors_open(path, &st, &err);
			CHECK(s == FB_ERR_CORRUPT && st == NULL && strstr(err.msg, path),
				  "truncated file at %zu: %d %s", cuts[i], (int) s, err.msg);
			unlink(path);
		}
		free(img);
	}
	rmdir(dir);
}

static void
test_dtype_helpers(void)
{
	CHECK(fb_dtype_size(FB_DT_F32) == 4 && fb_dtype_size(FB_DT_F16) == 2 &&
		  fb_dtype_size(FB_DT_BF16) == 2 && fb_dtype_size(FB_DT_F64) == 8 &&
		  fb_dtype_size(FB_DT_I64) == 8 && fb_dtype_size(FB_DT_I32) == 4 &&
		  fb_dtype_size(FB_DT_I16) == 2 && fb_dtype_size(FB_DT_I8) == 1 &&
		  fb_dtype_size(FB_DT_U8) == 1 && fb_dtype_size(FB_DT_BOOL) == 1,
		  "dtype sizes");
	CHECK(fb_dtype_size((fb_dtype) 99) == 0, "unknown dtype size");
	CHECK(strcmp(fb_dtype_name(FB_DT_BF16), "BF16") == 0 &&
		  strcmp(fb_dtype_name(FB_DT_BOOL), "BOOL") == 0, "dtype names");
	CHECK(strcmp(fb_dtype_name((fb_dtype) 99), "unknown") == 0, "unknown dtype name");
	fb_safetensors_close(NULL);
}

/* fb_tensor_to_f32 on tensors the parser did not make. */
static void
test_to_f32_guard(void)
{
	uint8_t		bytes[8] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
	float		v[4] = {0};
	fb_st_tensor t;
	fb_error	err;

	memset(&t, 0, sizeof(t));
	t.name = "hand";
	t.dtype = FB_DT_F32;
	t.ndim = 1;
	t.shape[0] = 2;
	t.n_elems = 2;
	t.data = bytes;
	t.nbytes = 8;
	CHECK(fb_tensor_to_f32(&t, v, &err) == FB_OK && v[0] == 1.0f && v[1] == 2.0f,
		  "hand-made f32");
	t.n_elems = 3;
	memset(&err, 0, sizeof(err));
	CHECK(fb_tensor_to_f32(&t, v, &err) == FB_ERR_INVALID &&
		  strstr(err.msg, "\"hand\"") != NULL, "inconsistent size: %s", err.msg);
	t.n_elems = (uint64_t) 1 << 62;
	CHECK(fb_tensor_to_f32(&t, v, &err) == FB_ERR_INVALID, "wrapping size");
	t.n_elems = 2;
	t.dtype = (fb_dtype) 99;
	memset(&err, 0, sizeof(err));
	CHECK(fb_tensor_to_f32(&t, v, &err) == FB_ERR_UNSUPPORTED &&
		  strstr(err.msg, "unknown") != NULL, "unknown dtype: %s", err.msg);
}

int
main(void)
{
	test_dtype_helpers();
	test_to_f32_guard();
	test_reference_files();
	test_accepted();
	test_tensor_count();
	test_metadata_count();
	test_prefix();
	test_json();
	test_dtype();
	test_shape();
	test_offsets();
	test_metadata();
	test_nesting();
	test_names();
	test_open();
	return fbt_finish("safetensors");
}
