/*
 * fb_zip.h — hostile-input reader of the zip archives PyTorch writes
 * (torch.save since 1.6): stored (uncompressed) entries only, read in
 * place from a memory image.
 */
#ifndef FB_ZIP_H
#define FB_ZIP_H

#include "fb_internal.h"

typedef struct fb_zip_entry
{
	char	   *name;			/* NUL-terminated copy */
	const uint8_t *data;		/* inside the image */
	uint64_t	size;
	uint32_t	crc32;			/* from the central directory */
	uint64_t	header_offset;
} fb_zip_entry;

typedef struct fb_zip
{
	fb_zip_entry *entries;		/* sorted by name */
	size_t		n_entries;
} fb_zip;

/* Does the image start like a zip archive (a local file header)? */
bool		fb_zip_sniff(const uint8_t *buf, size_t len);

/*
 * Parses the archive's directory (zip64 too): end-of-central-directory
 * record, every central header and local header bounds-checked, entries
 * inside the archive and not overlapping, names unique.  Compressed or
 * encrypted entries and multi-disk archives are FB_ERR_UNSUPPORTED, every
 * structural problem FB_ERR_CORRUPT; file names the archive in messages.
 * Entry CRCs are not verified here (see fb_zip_verify).
 */
fb_status	fb_zip_open(const uint8_t *buf, size_t len, const char *file,
						fb_zip **out, fb_error *err);

const fb_zip_entry *fb_zip_find(const fb_zip *z, const char *name);

/* Checks an entry's data against its CRC-32 (FB_ERR_CORRUPT). */
fb_status	fb_zip_verify(const fb_zip_entry *e, const char *file, fb_error *err);

void		fb_zip_free(fb_zip *z);

#endif
