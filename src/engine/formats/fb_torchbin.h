/*
 * fb_torchbin.h — pytorch_model.bin (torch.save, zip and legacy) into a
 * tensor source.  fb_source_open_torch (fb_source.h) opens one file; the
 * sharded-checkpoint reader adds shards with fb_torch_add_file.
 */
#ifndef FB_TORCHBIN_H
#define FB_TORCHBIN_H

#include "fb_source.h"

/* Adds the tensors of the source's mapped file fi (zip or legacy). */
fb_status	fb_torch_add_file(fb_source *src, int fi, fb_error *err);

/* Is file fi a zip archive (else it is read as the legacy stream)? */
bool		fb_torch_is_zip(const fb_source *src, int fi);

#endif
