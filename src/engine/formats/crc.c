/*
 * crc.c — CRC-32 and CRC-32C, slice-by-8 tables (built once) and, for
 * CRC-32C, the SSE4.2 crc32 instruction where the CPU has it: a
 * TensorFlow checkpoint's tensors are all checksummed, so BERT-large with
 * its optimizer slots is gigabytes to check.
 */
#include <pthread.h>

#include "fb_crc.h"

static uint32_t crc32_tab[8][256];
static uint32_t crc32c_tab[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void
make_table(uint32_t poly, uint32_t tab[8][256])
{
	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t	c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
		tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			tab[t][i] = (tab[t - 1][i] >> 8) ^ tab[0][tab[t - 1][i] & 0xff];
}

static void
make_tables(void)
{
	make_table(0xEDB88320u, crc32_tab);
	make_table(0x82F63B78u, crc32c_tab);
}

/* Reflected CRC, eight bytes per step (little-endian loads). */
static uint32_t
crc_slice8(uint32_t tab[8][256], uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n >= 8)
	{
		uint32_t	a = crc ^ ((uint32_t) p[0] | (uint32_t) p[1] << 8 |
							   (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
		uint32_t	b = (uint32_t) p[4] | (uint32_t) p[5] << 8 |
			(uint32_t) p[6] << 16 | (uint32_t) p[7] << 24;

		crc = tab[7][a & 0xff] ^ tab[6][(a >> 8) & 0xff] ^
			tab[5][(a >> 16) & 0xff] ^ tab[4][a >> 24] ^
			tab[3][b & 0xff] ^ tab[2][(b >> 8) & 0xff] ^
			tab[1][(b >> 16) & 0xff] ^ tab[0][b >> 24];
		p += 8;
		n -= 8;
	}
	while (n-- > 0)
		crc = (crc >> 8) ^ tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

uint32_t
fb_crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
	pthread_once(&tab_once, make_tables);
	return crc_slice8(crc32_tab, crc, p, n);
}

uint32_t
fb_crc32c_update_portable(uint32_t crc, const uint8_t *p, size_t n)
{
	pthread_once(&tab_once, make_tables);
	return crc_slice8(crc32c_tab, crc, p, n);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2")))
static uint32_t
crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t	c = ~crc;

	while (n > 0 && ((uintptr_t) p & 7) != 0)
	{
		c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
		n--;
	}
	while (n >= 8)
	{
		uint64_t	v;

		__builtin_memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	while (n-- > 0)
		c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
	return ~(uint32_t) c;
}
#endif

uint32_t
fb_crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_sse42(crc, p, n);
#endif
	return fb_crc32c_update_portable(crc, p, n);
}
