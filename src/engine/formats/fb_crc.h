/*
 * fb_crc.h — the two checksums of the model formats.
 *
 * CRC-32 (ISO-HDLC, polynomial 0x04C11DB7 reflected): zip entries, so
 * pytorch_model.bin archives.  CRC-32C (Castagnoli, 0x1EDC6F41 reflected):
 * TensorFlow's table blocks and tensor bundles, which store it "masked".
 */
#ifndef FB_CRC_H
#define FB_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Running CRCs: start with crc = 0, feed the bytes in any number of
 * pieces; the result of each call is the CRC of all bytes so far. */
uint32_t	fb_crc32_update(uint32_t crc, const uint8_t *p, size_t n);
uint32_t	fb_crc32c_update(uint32_t crc, const uint8_t *p, size_t n);

/* The table-driven CRC-32C, for testing the instruction-based one. */
uint32_t	fb_crc32c_update_portable(uint32_t crc, const uint8_t *p, size_t n);

/*
 * TensorFlow (after LevelDB) stores CRC-32C values rotated and offset, as a
 * CRC of data that itself holds CRCs is weak: crc32c::Mask / Unmask.
 */
static inline uint32_t
fb_crc32c_mask(uint32_t crc)
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

#endif
