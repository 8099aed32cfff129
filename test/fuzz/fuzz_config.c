/*
 * fuzz_config.c — libFuzzer harness for config.json parsing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/fb_config.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *buf;
	fb_config	cfg;
	fb_error	err;

	if (size > 4096)
		return 0;
	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (fb_config_parse(buf, size, "fuzz/config.json", &cfg, &err) == FB_OK)
	{
		/* every accepted config is internally consistent */
		if (cfg.hidden % cfg.n_heads != 0 || cfg.n_labels < 1 || cfg.labels == NULL)
			abort();
		for (int i = 0; i < cfg.n_labels; i++)
			if (cfg.labels[i] == NULL)
				abort();
		fb_config_free(&cfg);
	}
	free(buf);
	return 0;
}
