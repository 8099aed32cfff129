/*
 * device.c — what the background worker publishes about its compute
 * device and engine host process, for routing (finbert.execution = auto
 * sends every call to the worker when it runs on a GPU) and for the
 * finbert_stats and finbert_models views.
 *
 * One struct in shared memory under a spinlock (a few stores per batch);
 * without preloading there is no worker and nothing to publish: readers
 * get "not available".  A bottom layer (finbert_pg.h): calls no other file
 * of src/pg.
 */
#include "postgres.h"

#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "finbert_pg.h"

typedef struct FinbertDeviceShared
{
	slock_t		lock;
	FinbertDeviceStatus status;
	int			nmodels;
	FinbertDeviceModel models[FINBERT_DEVICE_MODELS];
} FinbertDeviceShared;

static FinbertDeviceShared *Shared = NULL;

void
FinbertDeviceShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(FinbertDeviceShared)));
}

void
FinbertDeviceShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("finbert device", sizeof(FinbertDeviceShared), &found);
	if (!found)
	{
		memset(Shared, 0, sizeof(*Shared));
		SpinLockInit(&Shared->lock);
		Shared->status.device = FINBERT_DEVICE_UNKNOWN;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The worker has resolved finbert.device to device (name: the device's). */
void
FinbertDeviceSetResolved(FinbertDeviceKind device, const char *name,
						 uint64 total_bytes)
{
	if (Shared == NULL)
		return;
	SpinLockAcquire(&Shared->lock);
	Shared->status.device = device;
	strlcpy(Shared->status.name, name ? name : "", sizeof(Shared->status.name));
	Shared->status.total_bytes = total_bytes;
	SpinLockRelease(&Shared->lock);
}

FinbertDeviceKind
FinbertDeviceResolved(void)
{
	FinbertDeviceKind d;

	if (Shared == NULL)
		return FINBERT_DEVICE_UNKNOWN;
	SpinLockAcquire(&Shared->lock);
	d = Shared->status.device;
	SpinLockRelease(&Shared->lock);
	return d;
}

void
FinbertDeviceHostStarted(int pid)
{
	if (Shared == NULL)
		return;
	SpinLockAcquire(&Shared->lock);
	Shared->status.host_pid = pid;
	if (pid != 0)
		Shared->status.host_starts++;
	SpinLockRelease(&Shared->lock);
}

void
FinbertDeviceHostFailed(void)
{
	if (Shared == NULL)
		return;
	SpinLockAcquire(&Shared->lock);
	Shared->status.host_failures++;
	SpinLockRelease(&Shared->lock);
}

/* A batch the worker ran on the GPU (through the host). */
void
FinbertDeviceCount(uint64 batches, uint64 tokens, uint64 used_bytes)
{
	if (Shared == NULL)
		return;
	SpinLockAcquire(&Shared->lock);
	Shared->status.batches += batches;
	Shared->status.tokens += tokens;
	Shared->status.used_bytes = used_bytes;
	SpinLockRelease(&Shared->lock);
}

/* The worker opened (device_bytes >= 0) or closed (< 0) model name. */
void
FinbertDeviceModelSet(const char *name, const char *device, int64 device_bytes)
{
	int			i;

	if (Shared == NULL)
		return;
	SpinLockAcquire(&Shared->lock);
	for (i = 0; i < Shared->nmodels; i++)
		if (strcmp(Shared->models[i].name, name) == 0)
			break;
	if (device_bytes < 0)
	{
		if (i < Shared->nmodels)
			Shared->models[i] = Shared->models[--Shared->nmodels];
	}
	else if (i < FINBERT_DEVICE_MODELS)
	{
		if (i == Shared->nmodels)
			Shared->nmodels++;
		strlcpy(Shared->models[i].name, name, sizeof(Shared->models[i].name));
		strlcpy(Shared->models[i].device, device, sizeof(Shared->models[i].device));
		Shared->models[i].device_bytes = device_bytes;
	}
	SpinLockRelease(&Shared->lock);
}

/* The worker forgets every model (it exits). */
void
FinbertDeviceModelsClear(void)
{
	if (Shared == NULL)
		return;
	SpinLockAcquire(&Shared->lock);
	Shared->nmodels = 0;
	Shared->status.host_pid = 0;
	SpinLockRelease(&Shared->lock);
}

bool
FinbertDeviceGetStatus(FinbertDeviceStatus *st, FinbertDeviceModel *models,
					   int *nmodels)
{
	if (Shared == NULL)
		return false;
	SpinLockAcquire(&Shared->lock);
	*st = Shared->status;
	if (models)
	{
		*nmodels = Shared->nmodels;
		memcpy(models, Shared->models, sizeof(FinbertDeviceModel) * Shared->nmodels);
	}
	SpinLockRelease(&Shared->lock);
	return true;
}
