/*
 * replay_main.c — runs a libFuzzer harness over every file of a corpus
 * directory without libFuzzer, so corpora are replayed by plain test runs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_test.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	size_t		n;
	char	   *file = fbt_read_file(path, &n);
	uint8_t    *buf;

	if (file == NULL)
		return -1;
	/* an exact-size copy (as libFuzzer does): ASan sees a read one past it */
	buf = malloc(n > 0 ? n : 1);
	if (buf == NULL)
	{
		free(file);
		return -1;
	}
	memcpy(buf, file, n);
	free(file);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	int			count = 0;

	for (int i = 1; i < argc; i++)
	{
		DIR		   *d = opendir(argv[i]);
		struct dirent *e;

		if (d == NULL)
		{
			if (replay_file(argv[i]) != 0)
			{
				fprintf(stderr, "cannot read %s\n", argv[i]);
				return 1;
			}
			count++;
			continue;
		}
		while ((e = readdir(d)) != NULL)
		{
			char		path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (replay_file(path) != 0)
			{
				fprintf(stderr, "cannot read %s\n", path);
				closedir(d);
				return 1;
			}
			count++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", count);
	return 0;
}
