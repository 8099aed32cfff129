/*
 * fb_test.h — a minimal unit-test harness for the engine tests.
 * Each test binary ends with the line "N passed, N failed" and exits
 * nonzero when anything failed.
 */
#ifndef FB_TEST_H
#define FB_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	fbt_passed = 0;
static int	fbt_failed = 0;

#define CHECK(cond, ...) do { \
	if (cond) fbt_passed++; \
	else { fbt_failed++; fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
		   fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_STATUS(st, err) CHECK((st) == FB_OK, "status %d: %s", (int) (st), (err).msg)

#define CHECK_NEAR(a, b, tol, ...) do { \
	double fbt_a_ = (a), fbt_b_ = (b); \
	if (fabs(fbt_a_ - fbt_b_) <= (tol)) fbt_passed++; \
	else { fbt_failed++; fprintf(stderr, "FAIL %s:%d: |%g - %g| > %g: ", __FILE__, __LINE__, fbt_a_, fbt_b_, (double) (tol)); \
		   fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

/* A whole file in a malloc'd buffer (NUL-terminated), NULL when unreadable. */
static inline unsigned char *
fbt_slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *buf;
	long		n;

	*len = 0;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = (unsigned char *) malloc((size_t) (n > 0 ? n : 0) + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
		n = 0;
	fclose(f);
	if (buf != NULL)
		buf[n] = '\0';
	*len = (size_t) n;
	return buf;
}

static inline int
fbt_finish(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, fbt_passed, fbt_failed);
	return fbt_failed == 0 ? 0 : 1;
}

#endif
