/*
 * zip.c — the zip container of pytorch_model.bin (fb_zip.h).
 *
 * PyTorch's writer (miniz) stores every entry uncompressed, pads local
 * headers so data is 64-byte aligned, sets the data-descriptor flag (the
 * local header's sizes are zero; the central directory has them) and always
 * ends with zip64 records.  The reader trusts only the central directory
 * for sizes, CRCs and offsets, and checks each local header against it.
 *
 * Layout, from the end: the end-of-central-directory record (EOCD, 22 bytes
 * + comment), optionally preceded by a zip64 locator (20 bytes) pointing at
 * a zip64 EOCD record; the central directory (one 46-byte header + name +
 * extra + comment per entry); before it the entries, each a 30-byte local
 * header + name + extra + data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_crc.h"
#include "fb_zip.h"

#define ZIP_LOCAL_SIG	0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG	0x06054b50u
#define ZIP64_EOCD_SIG	0x06064b50u
#define ZIP64_LOC_SIG	0x07064b50u

#define ZIP_LOCAL_LEN	30
#define ZIP_CENTRAL_LEN 46
#define ZIP_EOCD_LEN	22
#define ZIP64_EOCD_LEN	56
#define ZIP64_LOC_LEN	20

static uint16_t
le16(const uint8_t *p)
{
	return (uint16_t) (p[0] | p[1] << 8);
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
		(uint32_t) p[3] << 24;
}

static uint64_t
le64(const uint8_t *p)
{
	return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

static fb_status
zfail(const char *file, fb_error *err, fb_status st, const char *fmt,...)
FB_PRINTF(4, 5);

static fb_status
zfail(const char *file, fb_error *err, fb_status st, const char *fmt,...)
{
	char		buf[FB_ERRMSG_MAX];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fb_fail(err, st, "\"%s\": zip archive: %s", file, buf);
}

bool
fb_zip_sniff(const uint8_t *buf, size_t len)
{
	return len >= 4 && le32(buf) == ZIP_LOCAL_SIG;
}

void
fb_zip_free(fb_zip *z)
{
	if (z == NULL)
		return;
	for (size_t i = 0; i < z->n_entries; i++)
		free(z->entries[i].name);
	free(z->entries);
	free(z);
}

static int
entry_name_cmp(const void *a, const void *b)
{
	return strcmp(((const fb_zip_entry *) a)->name, ((const fb_zip_entry *) b)->name);
}

static int
entry_offset_cmp(const void *a, const void *b)
{
	const fb_zip_entry *x = *(const fb_zip_entry *const *) a;
	const fb_zip_entry *y = *(const fb_zip_entry *const *) b;

	return x->header_offset < y->header_offset ? -1 : x->header_offset > y->header_offset;
}

/*
 * The end of the central directory: where it starts, its size and entry
 * count, and where the directory's region ends (the zip64 record or the
 * EOCD), before which every entry must lie.
 */
typedef struct zip_end
{
	uint64_t	cd_offset;
	uint64_t	cd_size;
	uint64_t	n_entries;
	uint64_t	limit;
} zip_end;

static fb_status
find_end(const uint8_t *buf, size_t len, const char *file, zip_end *end,
		 fb_error *err)
{
	size_t		eocd = SIZE_MAX;
	size_t		lowest;
	const uint8_t *e;

	if (len < ZIP_EOCD_LEN)
		return zfail(file, err, FB_ERR_CORRUPT, "%zu bytes, too short for a zip archive", len);

	/* The EOCD record, last in the file after a comment of at most 64 KB:
	 * its comment length must reach the end of the file exactly. */
	lowest = len - ZIP_EOCD_LEN > 0xFFFF ? len - ZIP_EOCD_LEN - 0xFFFF : 0;
	for (size_t p = len - ZIP_EOCD_LEN + 1; p-- > lowest;)
	{
		if (le32(buf + p) == ZIP_EOCD_SIG &&
			p + ZIP_EOCD_LEN + le16(buf + p + 20) == len)
		{
			eocd = p;
			break;
		}
	}
	if (eocd == SIZE_MAX)
		return zfail(file, err, FB_ERR_CORRUPT, "no end-of-central-directory record");
	e = buf + eocd;
	if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != le16(e + 10))
		return zfail(file, err, FB_ERR_UNSUPPORTED, "multi-disk archives are not supported");
	end->n_entries = le16(e + 10);
	end->cd_size = le32(e + 12);
	end->cd_offset = le32(e + 16);
	end->limit = eocd;

	/* zip64: a locator right before the EOCD points at the zip64 record */
	if (eocd >= ZIP64_LOC_LEN && le32(buf + eocd - ZIP64_LOC_LEN) == ZIP64_LOC_SIG)
	{
		const uint8_t *loc = buf + eocd - ZIP64_LOC_LEN;
		uint64_t	off = le64(loc + 8);
		const uint8_t *z;

		if (le32(loc + 4) != 0 || le32(loc + 16) > 1)
			return zfail(file, err, FB_ERR_UNSUPPORTED, "multi-disk archives are not supported");
		if (off > eocd - ZIP64_LOC_LEN || eocd - ZIP64_LOC_LEN - off < ZIP64_EOCD_LEN)
			return zfail(file, err, FB_ERR_CORRUPT,
						 "zip64 end record at %llu is outside the archive",
						 (unsigned long long) off);
		z = buf + off;
		if (le32(z) != ZIP64_EOCD_SIG)
			return zfail(file, err, FB_ERR_CORRUPT, "bad zip64 end record signature");
		if (le32(z + 16) != 0 || le32(z + 20) != 0 || le64(z + 24) != le64(z + 32))
			return zfail(file, err, FB_ERR_UNSUPPORTED, "multi-disk archives are not supported");
		end->n_entries = le64(z + 32);
		end->cd_size = le64(z + 40);
		end->cd_offset = le64(z + 48);
		end->limit = off;
	}
	else if (end->n_entries == 0xFFFF || end->cd_size == 0xFFFFFFFFu ||
			 end->cd_offset == 0xFFFFFFFFu)
		return zfail(file, err, FB_ERR_CORRUPT, "zip64 values without a zip64 end record");

	if (end->n_entries > FB_ZIP_MAX_ENTRIES)
		return zfail(file, err, FB_ERR_CORRUPT, "%llu entries, over the limit of %d",
					 (unsigned long long) end->n_entries, FB_ZIP_MAX_ENTRIES);
	if (end->cd_offset > end->limit || end->cd_size > end->limit - end->cd_offset)
		return zfail(file, err, FB_ERR_CORRUPT,
					 "central directory (offset %llu, %llu bytes) is outside the archive",
					 (unsigned long long) end->cd_offset, (unsigned long long) end->cd_size);
	return FB_OK;
}

/* The zip64 extended-information extra field replaces the 0xFFFFFFFF
 * fields of a central header, in this order. */
static fb_status
read_zip64_extra(const uint8_t *x, size_t xlen, const char *file, const char *name,
				 uint64_t *usize, uint64_t *csize, uint64_t *offset, fb_error *err)
{
	size_t		p = 0;

	while (p + 4 <= xlen)
	{
		uint16_t	id = le16(x + p);
		uint16_t	n = le16(x + p + 2);
		size_t		q = p + 4;

		if (n > xlen - q)
			return zfail(file, err, FB_ERR_CORRUPT, "entry \"%s\": extra field runs past its header", name);
		if (id == 0x0001)
		{
			uint64_t   *fields[3] = {usize, csize, offset};

			for (int i = 0; i < 3; i++)
			{
				if (*fields[i] != 0xFFFFFFFFu)
					continue;
				if (q + 8 > p + 4 + n)
					return zfail(file, err, FB_ERR_CORRUPT, "entry \"%s\": zip64 extra field too short", name);
				*fields[i] = le64(x + q);
				q += 8;
			}
		}
		p += 4 + (size_t) n;
	}
	return FB_OK;
}

static fb_status
read_central(const uint8_t *buf, size_t len, const char *file,
			 const zip_end *end, fb_zip *z, fb_error *err)
{
	uint64_t	pos = end->cd_offset;
	uint64_t	cd_end = end->cd_offset + end->cd_size;

	for (uint64_t i = 0; i < end->n_entries; i++)
	{
		const uint8_t *h;
		fb_zip_entry *e = &z->entries[i];
		uint16_t	flags,
					method,
					nlen,
					xlen,
					clen;
		uint64_t	csize,
					usize,
					off;
		fb_status	st;

		if (cd_end - pos < ZIP_CENTRAL_LEN)
			return zfail(file, err, FB_ERR_CORRUPT, "central directory ends inside entry %llu",
						 (unsigned long long) i);
		h = buf + pos;
		if (le32(h) != ZIP_CENTRAL_SIG)
			return zfail(file, err, FB_ERR_CORRUPT, "bad central header signature at offset %llu",
						 (unsigned long long) pos);
		flags = le16(h + 8);
		method = le16(h + 10);
		e->crc32 = le32(h + 16);
		csize = le32(h + 20);
		usize = le32(h + 24);
		nlen = le16(h + 28);
		xlen = le16(h + 30);
		clen = le16(h + 32);
		off = le32(h + 42);
		if ((uint64_t) ZIP_CENTRAL_LEN + nlen + xlen + clen > cd_end - pos)
			return zfail(file, err, FB_ERR_CORRUPT, "central header %llu runs past the directory",
						 (unsigned long long) i);
		if (nlen == 0 || memchr(h + ZIP_CENTRAL_LEN, '\0', nlen) != NULL)
			return zfail(file, err, FB_ERR_CORRUPT, "entry %llu has an empty or invalid name",
						 (unsigned long long) i);
		e->name = malloc((size_t) nlen + 1);
		if (e->name == NULL)
			return zfail(file, err, FB_ERR_NOMEM, "out of memory");
		memcpy(e->name, h + ZIP_CENTRAL_LEN, nlen);
		e->name[nlen] = '\0';
		z->n_entries = i + 1;
		if ((st = read_zip64_extra(h + ZIP_CENTRAL_LEN + nlen, xlen, file, e->name,
								   &usize, &csize, &off, err)) != FB_OK)
			return st;
		if (flags & 0x0041)
			return zfail(file, err, FB_ERR_UNSUPPORTED, "entry \"%.200s\" is encrypted", e->name);
		if (method != 0)
			return zfail(file, err, FB_ERR_UNSUPPORTED,
						 "entry \"%.200s\" is compressed (method %u); PyTorch stores entries uncompressed",
						 e->name, method);
		if (csize != usize)
			return zfail(file, err, FB_ERR_CORRUPT,
						 "stored entry \"%.200s\" has compressed size %llu and size %llu",
						 e->name, (unsigned long long) csize, (unsigned long long) usize);
		e->size = usize;
		e->header_offset = off;
		pos += ZIP_CENTRAL_LEN + (uint64_t) nlen + xlen + clen;
	}
	if (pos != cd_end)
		return zfail(file, err, FB_ERR_CORRUPT,
					 "central directory of %llu bytes holds %llu bytes of headers",
					 (unsigned long long) end->cd_size,
					 (unsigned long long) (pos - end->cd_offset));
	(void) len;
	return FB_OK;
}

/* Each local header agrees with the central one; data lies before the
 * central directory and entries do not overlap. */
static fb_status
read_locals(const uint8_t *buf, const char *file, const zip_end *end, fb_zip *z,
			fb_error *err)
{
	fb_zip_entry **order;
	fb_status	st = FB_OK;

	if (z->n_entries == 0)
		return FB_OK;
	order = malloc(z->n_entries * sizeof(*order));
	if (order == NULL)
		return zfail(file, err, FB_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < z->n_entries; i++)
		order[i] = &z->entries[i];
	qsort(order, z->n_entries, sizeof(*order), entry_offset_cmp);
	for (size_t i = 0; i < z->n_entries && st == FB_OK; i++)
	{
		fb_zip_entry *e = order[i];
		uint64_t	off = e->header_offset;
		uint64_t	data,
					next;
		const uint8_t *h;
		uint16_t	nlen,
					xlen;

		next = i + 1 < z->n_entries ? order[i + 1]->header_offset : end->cd_offset;
		if (off > end->cd_offset || end->cd_offset - off < ZIP_LOCAL_LEN)
		{
			st = zfail(file, err, FB_ERR_CORRUPT,
					   "entry \"%.200s\": local header at %llu is outside the entry area",
					   e->name, (unsigned long long) off);
			break;
		}
		h = buf + off;
		nlen = le16(h + 26);
		xlen = le16(h + 28);
		data = off + ZIP_LOCAL_LEN + nlen + xlen;
		if (le32(h) != ZIP_LOCAL_SIG)
			st = zfail(file, err, FB_ERR_CORRUPT, "entry \"%.200s\": bad local header signature",
					   e->name);
		else if (data > next || e->size > next - data)
			st = zfail(file, err, FB_ERR_CORRUPT,
					   "entry \"%.200s\" (%llu bytes at %llu) overlaps the next entry or the central directory",
					   e->name, (unsigned long long) e->size, (unsigned long long) off);
		else if (nlen != strlen(e->name) || memcmp(h + ZIP_LOCAL_LEN, e->name, nlen) != 0)
			st = zfail(file, err, FB_ERR_CORRUPT,
					   "entry \"%.200s\": local header names another file", e->name);
		else
			e->data = buf + data;
	}
	free(order);
	return st;
}

fb_status
fb_zip_open(const uint8_t *buf, size_t len, const char *file, fb_zip **out,
			fb_error *err)
{
	zip_end		end = {0};
	fb_zip	   *z;
	fb_status	st;

	*out = NULL;
	if ((st = find_end(buf, len, file, &end, err)) != FB_OK)
		return st;
	z = calloc(1, sizeof(*z));
	if (z == NULL)
		return zfail(file, err, FB_ERR_NOMEM, "out of memory");
	/* n_entries <= FB_ZIP_MAX_ENTRIES, and each needs 46 bytes of directory */
	if (end.n_entries > end.cd_size / ZIP_CENTRAL_LEN)
	{
		free(z);
		return zfail(file, err, FB_ERR_CORRUPT, "%llu entries cannot fit a central directory of %llu bytes",
					 (unsigned long long) end.n_entries, (unsigned long long) end.cd_size);
	}
	z->entries = calloc(end.n_entries ? (size_t) end.n_entries : 1, sizeof(fb_zip_entry));
	if (z->entries == NULL)
	{
		free(z);
		return zfail(file, err, FB_ERR_NOMEM, "out of memory");
	}
	st = read_central(buf, len, file, &end, z, err);
	if (st == FB_OK)
		st = read_locals(buf, file, &end, z, err);
	if (st == FB_OK && z->n_entries > 1)
	{
		qsort(z->entries, z->n_entries, sizeof(fb_zip_entry), entry_name_cmp);
		for (size_t i = 1; i < z->n_entries; i++)
			if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0)
			{
				st = zfail(file, err, FB_ERR_CORRUPT, "entry \"%.200s\" appears twice",
						   z->entries[i].name);
				break;
			}
	}
	if (st != FB_OK)
	{
		fb_zip_free(z);
		return st;
	}
	*out = z;
	return FB_OK;
}

const fb_zip_entry *
fb_zip_find(const fb_zip *z, const char *name)
{
	size_t		lo = 0,
				hi = z->n_entries;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;
		int			c = strcmp(name, z->entries[mid].name);

		if (c == 0)
			return &z->entries[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

fb_status
fb_zip_verify(const fb_zip_entry *e, const char *file, fb_error *err)
{
	uint32_t	got = fb_crc32_update(0, e->data, (size_t) e->size);

	if (got != e->crc32)
		return zfail(file, err, FB_ERR_CORRUPT,
					 "entry \"%.200s\": CRC-32 mismatch (stored %08x, computed %08x)",
					 e->name, (unsigned) e->crc32, (unsigned) got);
	return FB_OK;
}
