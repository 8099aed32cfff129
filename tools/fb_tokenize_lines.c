/*
 * fb_tokenize_lines.c — tokenizes JSON-string lines with the engine and
 * prints "id:start:end ..." per line (or "ERROR <status>: <message>").
 * Used by tools/diff_tokenizer.py to compare with Hugging Face.
 *
 *   fb_tokenize_lines VOCAB uncased|cased < lines.jsonl
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "finbert.h"

int
main(int argc, char **argv)
{
	fb_tokenizer_options o = fb_tokenizer_default_options();
	fb_tokenizer *tok;
	fb_encoding enc;
	fb_error	err;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s VOCAB uncased|cased < lines.jsonl\n", argv[0]);
		return 2;
	}
	o.do_lower_case = strcmp(argv[2], "cased") != 0;
	if (fb_tokenizer_load(argv[1], &o, &tok, &err) != FB_OK)
	{
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	fb_encoding_init(&enc);
	while ((n = getline(&line, &cap, stdin)) > 0)
	{
		json_object *j = json_tokener_parse(line);
		fb_status	st;

		if (j == NULL || !json_object_is_type(j, json_type_string))
		{
			fprintf(stderr, "bad input line\n");
			return 1;
		}
		st = fb_tokenizer_encode(tok, json_object_get_string(j),
								 (size_t) json_object_get_string_len(j), 1, NULL,
								 &enc, &err);
		if (st != FB_OK)
			printf("ERROR %s: %s\n", fb_status_name(st), err.msg);
		else
		{
			for (size_t i = 0; i < enc.n; i++)
				printf(i ? " %d:%d:%d" : "%d:%d:%d", enc.ids[i], enc.start[i], enc.end[i]);
			putchar('\n');
		}
		json_object_put(j);
	}
	free(line);
	fb_encoding_free(&enc);
	fb_tokenizer_free(tok);
	return 0;
}
