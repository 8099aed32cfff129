/*
 * test_model_files.c — malformed model directories give clean errors.
 *
 * Each case copies the `cls` fixture into a temporary directory, breaks
 * one thing, and checks the status code and that the message names the
 * offending file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fb_test.h"
#include "finbert.h"

#define SRC "test/fixtures/models/cls/"

static char tmpdir[256];

static void
spit(const char *name, const char *data, size_t len)
{
	char		path[512];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		return;
	fwrite(data, 1, len, f);
	fclose(f);
}

/* Fresh copy of the fixture in tmpdir. */
static void
reset_dir(void)
{
	static const char *const files[] = {"config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"};
	char		path[512];

	for (size_t i = 0; i < 4; i++)
	{
		size_t		len;
		char	   *buf;

		snprintf(path, sizeof(path), SRC "%s", files[i]);
		buf = fbt_read_file(path, &len);
		CHECK(buf != NULL, "could not read %s", path);
		if (buf)
			spit(files[i], buf, len);
		free(buf);
	}
	snprintf(path, sizeof(path), "%s/pytorch_model.bin", tmpdir);
	unlink(path);
}

/* Replaces the first occurrence of `from` with `to` in a file. */
static void
edit(const char *name, const char *from, const char *to)
{
	char		path[512];
	size_t		len;
	char	   *buf,
			   *hit,
			   *out;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	buf = fbt_read_file(path, &len);
	CHECK(buf != NULL, "could not read %s", path);
	if (buf == NULL)
		return;
	hit = strstr(buf, from);
	if (hit == NULL)
	{
		fprintf(stderr, "edit: \"%s\" not in %s\n", from, name);
		free(buf);
		return;
	}
	out = malloc(len + strlen(to) + 1);
	memcpy(out, buf, (size_t) (hit - buf));
	strcpy(out + (hit - buf), to);
	strcat(out, hit + strlen(from));
	spit(name, out, strlen(out));
	free(out);
	free(buf);
}

static void
expect(const char *what, fb_status want, const char *file_in_msg)
{
	fb_model   *m = NULL;
	fb_error	err = {0};
	fb_status	st = fb_model_open(tmpdir, NULL, &m, &err);

	CHECK(st == want, "%s: status %s (%d), want %d: %s", what, fb_status_name(st), st, want, err.msg);
	CHECK(m == NULL || st == FB_OK, "%s: no model on failure", what);
	if (st != FB_OK)
		CHECK(strstr(err.msg, file_in_msg) != NULL, "%s: message names %s: %s", what, file_in_msg, err.msg);
	fb_model_free(m);
}

static void
truncate_file(const char *name, long keep)
{
	char		path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if (truncate(path, keep) != 0)
		fprintf(stderr, "truncate failed\n");
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/finbert-test-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;

	reset_dir();
	expect("intact copy", FB_OK, "");

	reset_dir();
	edit("config.json", "\"model_type\"", "\"model_type\" \"oops\"");
	expect("bad JSON", FB_ERR_CORRUPT, "config.json");

	reset_dir();
	edit("config.json", "{", "{\"extra\": 1} trailing");
	expect("trailing garbage after JSON", FB_ERR_CORRUPT, "config.json");

	reset_dir();
	edit("config.json", "\"hidden_size\": 32", "\"hidden_size\": 64");
	expect("shape/config mismatch", FB_ERR_CORRUPT, "model.safetensors");

	reset_dir();
	edit("config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
	expect("missing layer tensor", FB_ERR_CORRUPT, "encoder.layer.2");

	reset_dir();
	edit("config.json", "\"vocab_size\": 21128", "\"vocab_size\": 21127");
	expect("wrong vocab size", FB_ERR_CORRUPT, "vocab.txt");

	reset_dir();
	edit("vocab.txt", "[CLS]\n", "[XLS]\n");
	expect("no [CLS] in vocab", FB_ERR_CORRUPT, "vocab.txt");

	reset_dir();
	edit("config.json", "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"");
	expect("unsupported activation", FB_ERR_UNSUPPORTED, "config.json");

	reset_dir();
	edit("config.json", "\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": 0.5");
	expect("layer_norm_eps out of range", FB_ERR_CORRUPT, "config.json");

	reset_dir();
	edit("config.json", "\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"");
	expect("unsupported architecture", FB_ERR_UNSUPPORTED, "config.json");

	reset_dir();
	edit("config.json", "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
	expect("heads do not divide hidden", FB_ERR_CORRUPT, "config.json");

	reset_dir();
	edit("config.json", "\"2\": \"positive\"", "\"3\": \"positive\"");
	expect("id2label gap", FB_ERR_CORRUPT, "config.json");

	reset_dir();
	edit("config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 100000");
	expect("absurd layer count", FB_ERR_CORRUPT, "config.json");

	reset_dir();
	truncate_file("model.safetensors", 1000);
	expect("truncated weights", FB_ERR_CORRUPT, "model.safetensors");

	reset_dir();
	truncate_file("model.safetensors", 4);
	expect("weights under 8 bytes", FB_ERR_CORRUPT, "model.safetensors");

	reset_dir();
	{
		char		path[512];

		snprintf(path, sizeof(path), "%s/model.safetensors", tmpdir);
		unlink(path);
		expect("no weights", FB_ERR_IO, "model.safetensors");
		spit("pytorch_model.bin", "PK", 2);
		expect("only a broken pytorch_model.bin", FB_ERR_CORRUPT, "pytorch_model.bin");
	}

	/* the weight file truncated while the model is loaded: results keep
	 * coming from the private copy, nothing faults */
	reset_dir();
	{
		fb_model   *m = NULL;
		fb_error	err = {0};
		float		a[3],
					b[3];
		fb_text		t = {"贵州茅台净利润同比增长", strlen("贵州茅台净利润同比增长")};

		CHECK_STATUS(fb_model_open(tmpdir, NULL, &m, &err), err);
		if (m != NULL)
		{
			fb_session *s = fb_session_new(m);

			CHECK_STATUS(fb_classify(s, &t, 1, NULL, a, NULL, &err), err);
			truncate_file("model.safetensors", 0);
			CHECK_STATUS(fb_classify(s, &t, 1, NULL, b, NULL, &err), err);
			CHECK(memcmp(a, b, sizeof(a)) == 0, "same result after the file was truncated");
			fb_session_free(s);
			fb_model_free(m);
		}
	}

	{
		char		cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup failed\n");
	}
	return fbt_finish("model_files");
}
