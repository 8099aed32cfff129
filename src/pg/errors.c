/*
 * errors.c — errors shared by the whole glue: engine status to ereport,
 * and the privilege check of administrative functions.
 *
 * A bottom layer (finbert_pg.h): calls no other file of src/pg.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"

#include "finbert_pg.h"

/*
 * Raises the engine error err as ERROR "context: message", with the
 * SQLSTATE of its status.  FB_ERR_INTERRUPTED services the pending
 * interrupt first (whose error, cancel or timeout, then wins).
 */
void
FinbertEngineError(const fb_error *err, const char *context)
{
	const char *msg = err->msg[0] ? err->msg : fb_status_name(err->status);
	int			code;

	switch (err->status)
	{
		case FB_ERR_IO:
			code = ERRCODE_UNDEFINED_FILE;
			break;
		case FB_ERR_CORRUPT:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case FB_ERR_UNSUPPORTED:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		case FB_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case FB_ERR_INVALID:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case FB_ERR_LIMIT:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case FB_ERR_INTERRUPTED:
			CHECK_FOR_INTERRUPTS();
			code = ERRCODE_QUERY_CANCELED;
			break;
		case FB_ERR_NUMERIC:
			code = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			break;
		case FB_ERR_DEVICE:
			/* the engine's message names what is missing or failed */
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("%s: the CUDA device is not usable", context),
					 errdetail("%s", msg),
					 errhint("Check finbert.cuda_module, the NVIDIA driver and the device, "
							 "or set finbert.device to auto or cpu.")));
			pg_unreachable();
		default:
			code = ERRCODE_INTERNAL_ERROR;
			break;
	}
	ereport(ERROR, (errcode(code), errmsg("%s: %s", context, msg)));
	pg_unreachable();
}

/*
 * Superusers and members of finbert_admin may change the registry, clear
 * the cache and reset the statistics; others get 42501 naming action.
 */
void
FinbertCheckAdmin(const char *action)
{
	Oid			admin;

	if (superuser())
		return;
	admin = get_role_oid("finbert_admin", true);
	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s", action),
			 errhint("Only superusers and members of the role \"finbert_admin\" may do this.")));
}
