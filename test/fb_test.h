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

/* unused in files that only read files (the fuzz replay driver) */
static int	fbt_passed __attribute__((unused)) = 0;
static int	fbt_failed __attribute__((unused)) = 0;

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

static inline int
fbt_finish(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, fbt_passed, fbt_failed);
	return fbt_failed == 0 ? 0 : 1;
}

/*
 * The whole file at path, malloc'd with a terminating NUL (so a text file
 * is a C string); *len (when not NULL) gets its size.  NULL when the file
 * cannot be opened or read, or memory runs out.
 */
static inline char *
fbt_read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	long		n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
		fseek(f, 0, SEEK_SET) == 0 && (buf = (char *) malloc((size_t) n + 1)) != NULL &&
		fread(buf, 1, (size_t) n, f) == (size_t) n)
	{
		buf[n] = '\0';
		if (len)
			*len = (size_t) n;
	}
	else
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

#endif
