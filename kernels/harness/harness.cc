/*
 * harness.cc — the CPU execution harness behind fbh_cuda.h: fibers and
 * their scheduler, launches, the CUDA runtime stand-in (memory, streams,
 * events, errors) and reference cuBLAS / cuBLASLt GEMMs.
 *
 * Fault injection (tests of the backend's error paths), from the
 * environment variable FINBERT_HARNESS_FAULT or fbh_set_fault():
 *   malloc:N   the N-th device allocation and every later one fail
 *              (cudaErrorMemoryAllocation)
 *   launch:N   the N-th kernel fails (cudaErrorLaunchFailure, sticky: the
 *              context is unusable afterwards, as on a GPU)
 *   segv:N     the N-th kernel raises SIGSEGV (a driver or kernel crash
 *              that takes the process down)
 *   nodevice   no device (cudaErrorNoDevice)
 *   nodriver   no driver (cudaErrorInsufficientDriver)
 */
#include "fbh_cuda.h"

#include <cblas.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define FBH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FBH_ASAN 1
#endif
#endif

#ifdef FBH_ASAN
extern "C" void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
											   size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
												size_t *size_old);
extern "C" void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#define FBH_EXPORT extern "C" __attribute__((visibility("default")))

namespace fbh
{
	Thread	   *current;
	dim3		grid_dim,
				block_dim;
}

/* ------------------------------------------------------------------------
 * Half precision conversions (round to nearest, ties to even)
 * ------------------------------------------------------------------------ */
static uint16_t f32_to_f16_soft(float f);

#if defined(__x86_64__)
/* F16C's vcvtps2ph rounds to nearest even as the reference below does
 * (test_cuda_kernels compares both on every input class) */
__attribute__((target("f16c"))) static uint16_t
f32_to_f16_f16c(float f)
{
	return (uint16_t) _cvtss_sh(f, 0);
}

static uint16_t (*f32_to_f16_impl) (float) =
	__builtin_cpu_supports("f16c") ? f32_to_f16_f16c : f32_to_f16_soft;
#else
static uint16_t (*f32_to_f16_impl) (float) = f32_to_f16_soft;
#endif

uint16_t
fbh::f32_to_f16_bits(float f)
{
	return f32_to_f16_impl(f);
}

/* Exported for the kernel test: the portable conversion. */
extern "C" __attribute__((visibility("default"))) uint16_t
fbh_f32_to_f16_soft(float f)
{
	return f32_to_f16_soft(f);
}

static uint16_t
f32_to_f16_soft(float f)
{
	uint32_t	x;
	uint32_t	sign,
				mant;
	int			exp;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000u;
	exp = (int) ((x >> 23) & 0xff);
	mant = x & 0x7fffffu;
	if (exp == 0xff)			/* inf, NaN (kept quiet) */
		return (uint16_t) (sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
	exp = exp - 127 + 15;
	if (exp >= 31)				/* overflow */
		return (uint16_t) (sign | 0x7c00u);
	if (exp <= 0)
	{
		/* subnormal half (or zero): shift the full mantissa in */
		uint32_t	m,
					shift,
					half_bits,
					rem,
					halfway;

		if (exp < -10)
			return (uint16_t) sign;
		m = mant | 0x800000u;
		shift = (uint32_t) (14 - exp);
		half_bits = m >> shift;
		rem = m & ((1u << shift) - 1);
		halfway = 1u << (shift - 1);
		if (rem > halfway || (rem == halfway && (half_bits & 1)))
			half_bits++;
		return (uint16_t) (sign | half_bits);
	}
	{
		uint32_t	h = sign | ((uint32_t) exp << 10) | (mant >> 13);
		uint32_t	rem = mant & 0x1fffu;

		if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
			h++;				/* may carry into the exponent: correct */
		return (uint16_t) h;
	}
}

static float
f16_to_f32_slow(uint16_t h)
{
	uint32_t	sign = ((uint32_t) h & 0x8000u) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ffu;
	uint32_t	x;
	float		f;

	if (exp == 0)
	{
		if (mant == 0)
			x = sign;
		else
		{
			/* subnormal: normalise */
			int			e = -1;

			do
			{
				e++;
				mant <<= 1;
			} while ((mant & 0x400u) == 0);
			x = sign | ((uint32_t) (127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
		}
	}
	else if (exp == 0x1f)
		x = sign | 0x7f800000u | (mant << 13);
	else
		x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
	memcpy(&f, &x, 4);
	return f;
}

/* every half's value, built when the module loads */
static float f16_values[65536];

static struct f16_table_init
{
	f16_table_init()
	{
		for (uint32_t i = 0; i < 65536; i++)
			f16_values[i] = f16_to_f32_slow((uint16_t) i);
	}
}			f16_table_init_;

const float *const fbh::f16_table = f16_values;

uint16_t
fbh::f32_to_bf16_bits(float f)
{
	uint32_t	x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((x >> 16) | 0x40u);	/* quiet NaN */
	x += 0x7fffu + ((x >> 16) & 1);
	return (uint16_t) (x >> 16);
}

float
fbh::bf16_bits_to_f32(uint16_t h)
{
	uint32_t	x = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &x, 4);
	return f;
}

/* ------------------------------------------------------------------------
 * Global state: one lock for everything (launches run under it)
 * ------------------------------------------------------------------------ */
namespace
{
	std::recursive_mutex mu;
	cudaError_t last_error = cudaSuccess;
	cudaError_t sticky_error = cudaSuccess;
	std::string failure;		/* why the last launch failed */

	const size_t DEVICE_MEMORY = (size_t) 16 << 30; /* what the harness
													 * device reports */
	const int	MAX_THREADS = 1024;
	const size_t DEFAULT_SMEM = 48 * 1024;
	const size_t MAX_SMEM = 227 * 1024;

	std::map<void *, size_t> device_allocs;
	std::map<void *, size_t> host_allocs;
	size_t		device_in_use;
	std::map<const void *, int> smem_limit;

	/* fault injection */
	struct Fault
	{
		bool		parsed;
		long		malloc_at,
					launch_at,
					segv_at;
		bool		no_device,
					no_driver;
		long		n_malloc,
					n_launch;
	}			fault;

	void
	parse_fault(const char *spec)
	{
		fault = Fault();
		fault.parsed = true;
		if (spec == NULL || spec[0] == '\0')
			return;
		if (strncmp(spec, "malloc:", 7) == 0)
			fault.malloc_at = atol(spec + 7);
		else if (strncmp(spec, "launch:", 7) == 0)
			fault.launch_at = atol(spec + 7);
		else if (strncmp(spec, "segv:", 5) == 0)
			fault.segv_at = atol(spec + 5);
		else if (strcmp(spec, "nodevice") == 0)
			fault.no_device = true;
		else if (strcmp(spec, "nodriver") == 0)
			fault.no_driver = true;
	}

	void
	check_fault_env()
	{
		if (!fault.parsed)
			parse_fault(getenv("FINBERT_HARNESS_FAULT"));
	}

	cudaError_t
	set_error(cudaError_t e)
	{
		if (e != cudaSuccess)
			last_error = e;
		return e;
	}

	/* Device-side failures are sticky: the context is lost, as on a GPU. */
	cudaError_t
	entry_check()
	{
		check_fault_env();
		if (fault.no_driver)
			return set_error(cudaErrorInsufficientDriver);
		if (fault.no_device)
			return set_error(cudaErrorNoDevice);
		if (sticky_error != cudaSuccess)
			return set_error(sticky_error);
		return cudaSuccess;
	}
}

FBH_EXPORT void
fbh_set_fault(const char *spec)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	parse_fault(spec);
	sticky_error = cudaSuccess;
	last_error = cudaSuccess;
}

/* Why the last failed launch failed (harness diagnostics for tests). */
FBH_EXPORT const char *
fbh_last_failure(void)
{
	return failure.c_str();
}

/* ------------------------------------------------------------------------
 * Fibers
 * ------------------------------------------------------------------------ */
#if defined(__x86_64__)
extern "C" void fbh_ctx_switch(void **save_sp, void *load_sp);
extern "C" void fbh_fiber_tramp(void);

__asm__(
		".text\n"
		".globl fbh_ctx_switch\n"
		".type fbh_ctx_switch,@function\n"
		"fbh_ctx_switch:\n"
		"	pushq %rbp\n"
		"	pushq %rbx\n"
		"	pushq %r12\n"
		"	pushq %r13\n"
		"	pushq %r14\n"
		"	pushq %r15\n"
		"	movq %rsp, (%rdi)\n"
		"	movq %rsi, %rsp\n"
		"	popq %r15\n"
		"	popq %r14\n"
		"	popq %r13\n"
		"	popq %r12\n"
		"	popq %rbx\n"
		"	popq %rbp\n"
		"	ret\n"
		".size fbh_ctx_switch, .-fbh_ctx_switch\n"
		".globl fbh_fiber_tramp\n"
		".type fbh_fiber_tramp,@function\n"
		"fbh_fiber_tramp:\n"
		"	andq $-16, %rsp\n"
		"	call fbh_fiber_main\n"
		"	ud2\n"
		".size fbh_fiber_tramp, .-fbh_fiber_tramp\n"
		".section .note.GNU-stack,\"\",@progbits\n"
		".text\n");
#else
#include <ucontext.h>
#endif

namespace
{
	enum FiberState
	{
		F_RUNNABLE, F_BLOCK_BARRIER, F_WARP, F_DONE
	};

	const size_t STACK_BYTES = 256 * 1024;	/* wmma fragments hold whole
											 * tiles per lane */
	const size_t GUARD_BYTES = 4096;

	/* a suspended execution context */
	struct Ctx
	{
		void	   *sp;
#if !defined(__x86_64__)
		ucontext_t	uc;
#endif
		const void *stack_lo;	/* for ASan's fiber annotations */
		size_t		stack_size;
		void	   *fake_stack;
	};

	struct Fiber
	{
		char	   *mem;		/* guard page + stack */
		Ctx			ctx;
		fbh::Thread t;
		FiberState	state;
		/* warp collective arrival */
		fbh::collective_fn fn;
		void	   *fn_arg;
		void	   *data;
		unsigned	mask;
		int			kind;
	};

	/*
	 * One block's run.  A round hands control from fiber to fiber
	 * directly (round[pos] runs now): each one, when it waits or ends,
	 * counts itself and switches to the next; the last switches back to
	 * the scheduler, which opens barriers and fires warp collectives.
	 */
	struct BlockRun
	{
		std::vector<Fiber> fibers;
		const std::function<void()> *body;
		Ctx			sched;
		bool		failed;
		std::vector<char> smem;
		std::vector<int> round;
		size_t		pos;
		int			n_done,
					n_barrier;
		std::vector<int> warp_waiting;
	};

	/* globals, as fbh::current: one launch runs at a time */
	BlockRun   *run_now;
	Fiber	   *fiber_now;

	void		leave_fiber();

	/* Saves the running context in from and runs to; dying: from is
	 * never resumed. */
	inline void
	ctx_switch(Ctx *from, Ctx *to, bool dying)
	{
#ifdef FBH_ASAN
		__sanitizer_start_switch_fiber(dying ? NULL : &from->fake_stack, to->stack_lo,
									   to->stack_size);
#else
		(void) dying;
#endif
#if defined(__x86_64__)
		fbh_ctx_switch(&from->sp, to->sp);
#else
		swapcontext(&from->uc, &to->uc);
#endif
#ifdef FBH_ASAN
		__sanitizer_finish_switch_fiber(from->fake_stack, NULL, NULL);
#endif
	}
}

extern "C" void fbh_fiber_main(void);

extern "C" void
fbh_fiber_main(void)
{
#ifdef FBH_ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	(*run_now->body) ();
	fiber_now->state = F_DONE;
	leave_fiber();
	abort();					/* a finished fiber is never resumed */
}

#if !defined(__x86_64__)
static void
fiber_main_uc(void)
{
	fbh_fiber_main();
}
#endif

namespace
{
	/* The running fiber waits (its state says at what) or has ended:
	 * count it and hand over to the next of the round. */
	void
	leave_fiber()
	{
		Fiber	   *f = fiber_now;
		BlockRun   *r = run_now;
		Ctx		   *to;

		if (f->state == F_DONE)
			r->n_done++;
		else if (f->state == F_BLOCK_BARRIER)
			r->n_barrier++;
		else
			r->warp_waiting[(size_t) (f->t.linear / 32)]++;
		if (r->pos + 1 < r->round.size())
		{
			Fiber	   *g = &r->fibers[(size_t) r->round[++r->pos]];

			fiber_now = g;
			fbh::current = &g->t;
			to = &g->ctx;
		}
		else
		{
			fiber_now = NULL;
			fbh::current = NULL;
			to = &r->sched;
		}
		ctx_switch(&f->ctx, to, f->state == F_DONE);
	}

	/* Runs a round: every fiber of r->round until it waits or ends. */
	void
	run_round(BlockRun *r)
	{
		Fiber	   *g;

		if (r->round.empty())
			return;
		r->pos = 0;
		g = &r->fibers[(size_t) r->round[0]];
		fiber_now = g;
		fbh::current = &g->t;
		ctx_switch(&r->sched, &g->ctx, false);
		fiber_now = NULL;
		fbh::current = NULL;
	}

	/* stacks are kept for the life of the process and reused */
	std::vector<char *> stack_pool;

	char	   *
	get_stack(size_t i)
	{
		while (stack_pool.size() <= i)
		{
			void	   *p = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE,
								 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

			if (p == MAP_FAILED)
				return NULL;
			/* a guard page below the stack: an overflow faults */
			mprotect(p, GUARD_BYTES, PROT_NONE);
			stack_pool.push_back((char *) p);
		}
		return stack_pool[i];
	}

	bool
	init_fiber(Fiber *f, size_t i)
	{
		f->mem = get_stack(i);
		if (f->mem == NULL)
			return false;
#ifdef FBH_ASAN
		__asan_unpoison_memory_region(f->mem + GUARD_BYTES, STACK_BYTES - GUARD_BYTES);
#endif
#if defined(__x86_64__)
		{
			/* stacks sit 256 KB apart: stagger their tops so that the
			 * fibers' hot frames do not all fall in the same cache sets */
			uintptr_t	top = ((uintptr_t) (f->mem + STACK_BYTES - (i % 64) * 448)) & ~(uintptr_t) 15;
			void	  **sp = (void **) top;

			*--sp = NULL;		/* keeps the return slot's alignment */
			*--sp = (void *) fbh_fiber_tramp;
			for (int k = 0; k < 6; k++)
				*--sp = NULL;	/* rbp rbx r12 r13 r14 r15 */
			f->ctx.sp = sp;
		}
#else
		getcontext(&f->ctx.uc);
		f->ctx.uc.uc_stack.ss_sp = f->mem + GUARD_BYTES;
		f->ctx.uc.uc_stack.ss_size = STACK_BYTES - GUARD_BYTES;
		f->ctx.uc.uc_link = NULL;
		makecontext(&f->ctx.uc, fiber_main_uc, 0);
#endif
		f->ctx.stack_lo = f->mem + GUARD_BYTES;
		f->ctx.stack_size = STACK_BYTES - GUARD_BYTES;
		f->ctx.fake_stack = NULL;
		f->state = F_RUNNABLE;
		return true;
	}

	/* Ends the running launch from inside a kernel: the block is
	 * abandoned, the launch fails. */
	[[noreturn]] void
	kernel_abort(const char *fmt,...)
	{
		char		buf[512];
		va_list		ap;

		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		failure = buf;
		if (run_now == NULL || fiber_now == NULL)
		{
			fprintf(stderr, "finbert CUDA harness: %s (outside a kernel)\n", buf);
			abort();
		}
		run_now->failed = true;
		fiber_now->state = F_DONE;
		{
			Fiber	   *f = fiber_now;

			fiber_now = NULL;
			fbh::current = NULL;
			ctx_switch(&f->ctx, &run_now->sched, true);
		}
		abort();
	}

	/*
	 * Fires the collective warp w's waiting lanes wait at, if every lane of
	 * its mask has arrived; the lanes become runnable.  Returns whether it
	 * fired; sets *bad for a collective that can never complete.
	 */
	bool
	resolve_warp(BlockRun *r, int w, std::vector<int> &runnable, bool *bad)
	{
		int			n = (int) r->fibers.size();
		int			base = w * 32;
		int			lanes = n - base < 32 ? n - base : 32;
		Fiber	   *f = NULL;
		void	   *data[32] = {0};

		for (int l = 0; l < lanes && f == NULL; l++)
			if (r->fibers[(size_t) (base + l)].state == F_WARP)
				f = &r->fibers[(size_t) (base + l)];
		if (f == NULL)
			return false;
		for (int m = 0; m < 32; m++)
		{
			Fiber	   *g;

			if (!(f->mask & (1u << m)))
				continue;
			if (m >= lanes)
			{
				failure = "a warp operation's mask names a lane the block does not have";
				*bad = true;
				return false;
			}
			g = &r->fibers[(size_t) (base + m)];
			if (g->state == F_DONE)
			{
				failure = "a warp operation's mask names a lane that has exited";
				*bad = true;
				return false;
			}
			if (g->state != F_WARP)
				return false;	/* not all there yet */
			if (g->mask != f->mask || g->kind != f->kind || g->fn != f->fn)
			{
				failure = "lanes of a warp wait at different warp operations";
				*bad = true;
				return false;
			}
			data[m] = g->data;
		}
		f->fn(data, f->mask, f->fn_arg);
		for (int m = 0; m < 32; m++)
			if (f->mask & (1u << m))
			{
				r->fibers[(size_t) (base + m)].state = F_RUNNABLE;
				runnable.push_back(base + m);
			}
		return true;
	}

	/*
	 * Runs one block to completion; false when the launch fails.  Rounds:
	 * every runnable fiber runs until it waits or ends; then the block
	 * barrier opens when every live thread waits at it, and each warp's
	 * collective fires when its lanes are all there.  A round in which
	 * nothing can move is a deadlock.
	 */
	bool
	run_block(BlockRun *r, dim3 bidx, dim3 bdim)
	{
		int			n = (int) (bdim.x * bdim.y * bdim.z);
		int			n_warps = (n + 31) / 32;

		r->fibers.resize((size_t) n);
		r->round.clear();
		r->warp_waiting.assign((size_t) n_warps, 0);
		r->n_done = 0;
		r->n_barrier = 0;
		for (int i = 0; i < n; i++)
		{
			Fiber	   *f = &r->fibers[(size_t) i];

			if (!init_fiber(f, (size_t) i))
			{
				failure = "cannot allocate fiber stacks";
				return false;
			}
			f->t.linear = i;
			f->t.thread_idx = dim3((unsigned) i % bdim.x, ((unsigned) i / bdim.x) % bdim.y,
								   (unsigned) i / (bdim.x * bdim.y));
			f->t.block_idx = bidx;
			r->round.push_back(i);
		}
		if (!r->smem.empty())
			memset(r->smem.data(), 0xff, r->smem.size());	/* NaN bytes */
		r->failed = false;
		for (;;)
		{
			bool		bad = false,
						moved = false;

			run_round(r);
			if (r->failed)
				return false;
			r->round.clear();
			if (r->n_done == n)
				return true;
			if (r->n_barrier > 0 && r->n_barrier + r->n_done == n)
			{
				/* exited threads count as arrived (as on Volta and later) */
				for (int i = 0; i < n; i++)
					if (r->fibers[(size_t) i].state == F_BLOCK_BARRIER)
					{
						r->fibers[(size_t) i].state = F_RUNNABLE;
						r->round.push_back(i);
					}
				r->n_barrier = 0;
				continue;
			}
			for (int w = 0; w < n_warps; w++)
			{
				size_t		before = r->round.size();

				/* a warp may hold several groups (disjoint masks) */
				while (r->warp_waiting[(size_t) w] > 0 && resolve_warp(r, w, r->round, &bad))
				{
					r->warp_waiting[(size_t) w] -= (int) (r->round.size() - before);
					before = r->round.size();
					moved = true;
				}
				if (bad)
					return false;
			}
			if (!moved)
			{
				failure = "deadlock: threads of a block wait at different barriers";
				return false;
			}
		}
	}

	/* Queued GPU work. */
	struct Op
	{
		cudaStream_t stream;
		std::function<cudaError_t()> run;
		fbh_event  *event;		/* an event record */
	};
	std::deque<Op> queue;

	uint64_t
	now_ns()
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
	}
}

struct fbh_event
{
	bool		recorded;
	bool		complete;
	uint64_t	t_ns;
};

struct fbh_stream
{
	unsigned	flags;
};

namespace
{
	/* Runs everything queued; device errors become sticky. */
	cudaError_t
	flush()
	{
		while (!queue.empty())
		{
			Op			op = queue.front();
			cudaError_t e;

			queue.pop_front();
			if (sticky_error != cudaSuccess)
				continue;		/* a lost context runs nothing more */
			if (op.event != NULL)
			{
				op.event->complete = true;
				op.event->t_ns = now_ns();
				continue;
			}
			e = op.run();
			if (e != cudaSuccess)
			{
				sticky_error = e;
				last_error = e;
			}
		}
		return sticky_error;
	}

	void
	enqueue(cudaStream_t s, std::function<cudaError_t()> fn)
	{
		Op			op;

		op.stream = s;
		op.run = fn;
		op.event = NULL;
		queue.push_back(op);
	}
}

void	   *
fbh::dynamic_smem()
{
	return run_now->smem.empty() ? NULL : run_now->smem.data();
}

void
fbh::sync_block()
{
	if (fiber_now == NULL)
		kernel_abort("__syncthreads outside a kernel");
	fiber_now->state = F_BLOCK_BARRIER;
	leave_fiber();
}

int
fbh::lane_id()
{
	return fbh::current->linear % 32;
}

void
fbh::warp_collective(unsigned mask, collective_fn fn, void *arg, void *my_data, int kind)
{
	Fiber	   *f = fiber_now;

	if (f == NULL)
		kernel_abort("warp operation outside a kernel");
	if (!(mask & (1u << (f->t.linear % 32))))
		kernel_abort("a lane calls a warp operation whose mask leaves it out");
	f->state = F_WARP;
	f->fn = fn;
	f->fn_arg = arg;
	f->data = my_data;
	f->mask = mask;
	f->kind = kind;
	leave_fiber();
}

void
fbh::shfl_op(void *lane_data[32], unsigned mask, void *kind_p)
{
	int			kind = (int) (intptr_t) kind_p;

	for (int l = 0; l < 32; l++)
	{
		ShflData   *d = (ShflData *) lane_data[l];
		int			w,
					seg,
					src;

		if (d == NULL)
			continue;
		w = d->width;
		seg = l & ~(w - 1);		/* first lane of this lane's segment */
		switch (kind)
		{
			case K_SHFL:
				src = seg + (d->arg & (w - 1));
				break;
			case K_SHFL_XOR:
				src = l ^ d->arg;
				if (src >= seg + w)
					src = l;
				break;
			case K_SHFL_DOWN:
				src = l + d->arg;
				if (src >= seg + w)
					src = l;
				break;
			default:			/* K_SHFL_UP */
				src = l - d->arg;
				if (src < seg)
					src = l;
				break;
		}
		if (lane_data[src] == NULL)
			kernel_abort("a shuffle reads lane %d, which is not in the mask", src);
		d->out = ((ShflData *) lane_data[src])->in;
	}
	(void) mask;
}

static void
ballot_op(void *lane_data[32], unsigned mask, void *)
{
	unsigned	bits = 0;

	for (int l = 0; l < 32; l++)
		if (lane_data[l] != NULL && ((int *) lane_data[l])[0])
			bits |= 1u << l;
	for (int l = 0; l < 32; l++)
		if (lane_data[l] != NULL)
			((int *) lane_data[l])[1] = (int) bits;
	(void) mask;
}

unsigned
__ballot_sync(unsigned mask, int pred)
{
	int			d[2] = {pred != 0, 0};

	fbh::warp_collective(mask, ballot_op, NULL, d, fbh::K_BALLOT);
	return (unsigned) d[1];
}

static void
noop_op(void *[32], unsigned, void *)
{
}

void
__syncwarp(unsigned mask)
{
	int			d = 0;

	fbh::warp_collective(mask, noop_op, NULL, &d, fbh::K_SYNCWARP);
}

void
nvcuda::wmma::fail_divergent(const char *op)
{
	kernel_abort("%s: the lanes of a warp hold different fragments or addresses", op);
}

/* ------------------------------------------------------------------------
 * Launches
 * ------------------------------------------------------------------------ */
cudaError_t
fbh::set_max_dynamic_smem(const void *fn, int bytes)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	if (bytes < 0 || (size_t) bytes > MAX_SMEM)
		return set_error(cudaErrorInvalidValue);
	smem_limit[fn] = bytes;
	return cudaSuccess;
}

void
fbh::launch(const void *fn, const char *name, dim3 grid, dim3 block, size_t smem,
			cudaStream_t s, std::function<void()> body)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	size_t		threads = (size_t) block.x * block.y * block.z;
	size_t		limit = DEFAULT_SMEM;
	std::string kname = name;

	if (entry_check() != cudaSuccess)
		return;
	if (smem_limit.count(fn))
		limit = (size_t) smem_limit[fn];
	if (threads == 0 || threads > (size_t) MAX_THREADS || grid.x == 0 || grid.y == 0 ||
		grid.z == 0 || grid.y > 65535 || grid.z > 65535 || block.z > 64)
	{
		failure = kname + ": invalid launch configuration";
		set_error(cudaErrorInvalidConfiguration);
		return;
	}
	if (smem > limit)
	{
		char		buf[256];

		snprintf(buf, sizeof(buf), "%s: %zu bytes of dynamic shared memory, the kernel is allowed %zu",
				 name, smem, limit);
		failure = buf;
		set_error(cudaErrorInvalidValue);
		return;
	}
	enqueue(s, [=]() -> cudaError_t
	{
		BlockRun	r;
		long		nth = ++fault.n_launch;

		if (fault.launch_at > 0 && nth == fault.launch_at)
		{
			failure = kname + ": injected launch failure";
			return cudaErrorLaunchFailure;
		}
		if (fault.segv_at > 0 && nth == fault.segv_at)
			raise(SIGSEGV);
		r.body = &body;
		r.smem.resize(smem);
		r.sched.fake_stack = NULL;
		{
			/* the scheduler runs on the calling thread's stack */
			pthread_attr_t at;
			void	   *lo = NULL;
			size_t		sz = 0;

			if (pthread_getattr_np(pthread_self(), &at) == 0)
			{
				pthread_attr_getstack(&at, &lo, &sz);
				pthread_attr_destroy(&at);
			}
			r.sched.stack_lo = lo;
			r.sched.stack_size = sz;
		}
		run_now = &r;
		grid_dim = grid;
		block_dim = block;
		for (unsigned z = 0; z < grid.z; z++)
			for (unsigned y = 0; y < grid.y; y++)
				for (unsigned x = 0; x < grid.x; x++)
				{
					if (!run_block(&r, dim3(x, y, z), block))
					{
						run_now = NULL;
						failure = kname + ": " + failure;
						return cudaErrorLaunchFailure;
					}
				}
		run_now = NULL;
		return cudaSuccess;
	});
}

/* ------------------------------------------------------------------------
 * Runtime
 * ------------------------------------------------------------------------ */
const char *
cudaGetErrorString(cudaError_t e)
{
	switch (e)
	{
		case cudaSuccess:
			return "no error";
		case cudaErrorInvalidValue:
			return "invalid argument";
		case cudaErrorMemoryAllocation:
			return "out of memory";
		case cudaErrorInitializationError:
			return "initialization error";
		case cudaErrorInvalidConfiguration:
			return "invalid configuration argument";
		case cudaErrorInsufficientDriver:
			return "CUDA driver version is insufficient for CUDA runtime version";
		case cudaErrorNoDevice:
			return "no CUDA-capable device is detected";
		case cudaErrorInvalidDevice:
			return "invalid device ordinal";
		case cudaErrorInvalidResourceHandle:
			return "invalid resource handle";
		case cudaErrorNotReady:
			return "device not ready";
		case cudaErrorIllegalAddress:
			return "an illegal memory access was encountered";
		case cudaErrorLaunchOutOfResources:
			return "too many resources requested for launch";
		case cudaErrorLaunchFailure:
			return "unspecified launch failure";
		default:
			return "unknown error";
	}
}

const char *
cudaGetErrorName(cudaError_t e)
{
	switch (e)
	{
		case cudaSuccess:
			return "cudaSuccess";
		case cudaErrorInvalidValue:
			return "cudaErrorInvalidValue";
		case cudaErrorMemoryAllocation:
			return "cudaErrorMemoryAllocation";
		case cudaErrorInvalidConfiguration:
			return "cudaErrorInvalidConfiguration";
		case cudaErrorInsufficientDriver:
			return "cudaErrorInsufficientDriver";
		case cudaErrorNoDevice:
			return "cudaErrorNoDevice";
		case cudaErrorInvalidDevice:
			return "cudaErrorInvalidDevice";
		case cudaErrorNotReady:
			return "cudaErrorNotReady";
		case cudaErrorLaunchFailure:
			return "cudaErrorLaunchFailure";
		default:
			return "cudaErrorUnknown";
	}
}

cudaError_t
cudaGetLastError(void)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = last_error;

	last_error = sticky_error;
	return e;
}

cudaError_t
cudaPeekAtLastError(void)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	return last_error;
}

cudaError_t
cudaGetDeviceCount(int *n)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	*n = e == cudaSuccess ? 1 : 0;
	return e;
}

cudaError_t
cudaSetDevice(int d)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	return d == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice);
}

cudaError_t
cudaGetDevice(int *d)
{
	*d = 0;
	return cudaSuccess;
}

cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	if (d != 0)
		return set_error(cudaErrorInvalidDevice);
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "finbert CPU harness");
	p->totalGlobalMem = DEVICE_MEMORY;
	p->sharedMemPerBlock = DEFAULT_SMEM;
	p->sharedMemPerBlockOptin = MAX_SMEM;
	p->major = 9;
	p->minor = 0;
	p->multiProcessorCount = 1;
	p->warpSize = 32;
	return cudaSuccess;
}

cudaError_t
cudaDriverGetVersion(int *v)
{
	*v = 0;
	return cudaSuccess;
}

cudaError_t
cudaRuntimeGetVersion(int *v)
{
	*v = 0;
	return cudaSuccess;
}

cudaError_t
cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	*total_b = DEVICE_MEMORY;
	*free_b = DEVICE_MEMORY - device_in_use;
	return cudaSuccess;
}

cudaError_t
cudaMalloc(void **p, size_t n)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();
	void	   *m;

	*p = NULL;
	if (e != cudaSuccess)
		return e;
	++fault.n_malloc;
	if ((fault.malloc_at > 0 && fault.n_malloc >= fault.malloc_at) ||
		n > DEVICE_MEMORY - device_in_use)
		return set_error(cudaErrorMemoryAllocation);
	if (n == 0)
		return cudaSuccess;
	if (posix_memalign(&m, 256, n) != 0)
		return set_error(cudaErrorMemoryAllocation);
	memset(m, 0xff, n);			/* NaN bytes: uninitialised reads show */
	device_allocs[m] = n;
	device_in_use += n;
	*p = m;
	return cudaSuccess;
}

cudaError_t
cudaFree(void *p)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	std::map<void *, size_t>::iterator it;

	if (p == NULL)
		return cudaSuccess;
	flush();					/* cudaFree synchronises */
	it = device_allocs.find(p);
	if (it == device_allocs.end())
		return set_error(cudaErrorInvalidValue);
	device_in_use -= it->second;
	device_allocs.erase(it);
	free(p);
	return cudaSuccess;
}

cudaError_t
cudaHostAlloc(void **p, size_t n, unsigned flags)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();
	void	   *m;

	(void) flags;
	*p = NULL;
	if (e != cudaSuccess)
		return e;
	if (posix_memalign(&m, 4096, n > 0 ? n : 1) != 0)
		return set_error(cudaErrorMemoryAllocation);
	memset(m, 0xff, n);
	host_allocs[m] = n;
	*p = m;
	return cudaSuccess;
}

cudaError_t
cudaMallocHost(void **p, size_t n)
{
	return cudaHostAlloc(p, n, 0);
}

cudaError_t
cudaFreeHost(void *p)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	std::map<void *, size_t>::iterator it;

	if (p == NULL)
		return cudaSuccess;
	flush();
	it = host_allocs.find(p);
	if (it == host_allocs.end())
		return set_error(cudaErrorInvalidValue);
	host_allocs.erase(it);
	free(p);
	return cudaSuccess;
}

/* Is [p, p + n) inside one device allocation? */
static bool
in_device(const void *p, size_t n)
{
	std::map<void *, size_t>::iterator it = device_allocs.upper_bound((void *) p);

	if (it == device_allocs.begin())
		return false;
	--it;
	return (const char *) p >= (const char *) it->first &&
		(const char *) p + n <= (const char *) it->first + it->second;
}

static cudaError_t
check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
	bool		ok = true;

	if (n == 0)
		return cudaSuccess;
	if (k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice)
		ok &= in_device(dst, n);
	if (k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice)
		ok &= in_device(src, n);
	return ok ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t
cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	if ((e = check_copy(dst, src, n, k)) != cudaSuccess)
		return set_error(e);
	if ((e = flush()) != cudaSuccess)
		return set_error(e);
	memmove(dst, src, n);
	return cudaSuccess;
}

cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	if ((e = check_copy(dst, src, n, k)) != cudaSuccess)
		return set_error(e);
	/* runs when the stream does: the host must not touch src (or read
	 * dst) before it has synchronised */
	enqueue(s, [=]() -> cudaError_t
	{
		memmove(dst, src, n);
		return cudaSuccess;
	});
	return cudaSuccess;
}

cudaError_t
cudaMemset(void *p, int v, size_t n)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	if (n > 0 && !in_device(p, n))
		return set_error(cudaErrorInvalidValue);
	if ((e = flush()) != cudaSuccess)
		return set_error(e);
	memset(p, v, n);
	return cudaSuccess;
}

cudaError_t
cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	if (n > 0 && !in_device(p, n))
		return set_error(cudaErrorInvalidValue);
	enqueue(s, [=]() -> cudaError_t
	{
		memset(p, v, n);
		return cudaSuccess;
	});
	return cudaSuccess;
}

cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	*s = NULL;
	if (e != cudaSuccess)
		return e;
	*s = new fbh_stream;
	(*s)->flags = flags;
	return cudaSuccess;
}

cudaError_t
cudaStreamCreate(cudaStream_t *s)
{
	return cudaStreamCreateWithFlags(s, 0);
}

cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	flush();
	delete s;
	return cudaSuccess;
}

cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	(void) s;
	if (e != cudaSuccess)
		return e;
	return set_error(flush());
}

cudaError_t
cudaDeviceSynchronize(void)
{
	return cudaStreamSynchronize(NULL);
}

cudaError_t
cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned flags)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	(void) flags;
	*ev = NULL;
	if (e != cudaSuccess)
		return e;
	*ev = new fbh_event();
	return cudaSuccess;
}

cudaError_t
cudaEventCreate(cudaEvent_t *ev)
{
	return cudaEventCreateWithFlags(ev, 0);
}

cudaError_t
cudaEventRecord(cudaEvent_t ev, cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();
	Op			op;

	if (e != cudaSuccess)
		return e;
	ev->recorded = true;
	ev->complete = false;
	op.stream = s;
	op.event = ev;
	queue.push_back(op);
	return cudaSuccess;
}

/* The device has caught up with everything queued (the harness runs the
 * queue when the host asks). */
cudaError_t
cudaEventQuery(cudaEvent_t ev)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	cudaError_t e = entry_check();

	if (e != cudaSuccess)
		return e;
	if ((e = flush()) != cudaSuccess)
		return set_error(e);
	return ev->complete || !ev->recorded ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t
cudaEventSynchronize(cudaEvent_t ev)
{
	return cudaEventQuery(ev);
}

cudaError_t
cudaEventDestroy(cudaEvent_t ev)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	flush();
	delete ev;
	return cudaSuccess;
}

cudaError_t
cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
	if (!a->complete || !b->complete)
		return cudaErrorNotReady;
	*ms = (float) ((double) (b->t_ns - a->t_ns) / 1e6);
	return cudaSuccess;
}

/* ------------------------------------------------------------------------
 * cuBLAS / cuBLASLt: reference GEMMs
 * ------------------------------------------------------------------------ */
namespace
{
	float
	load_elem(const void *p, cudaDataType_t t, size_t i)
	{
		switch (t)
		{
			case CUDA_R_16F:
				return fbh::f16_bits_to_f32(((const uint16_t *) p)[i]);
			case CUDA_R_16BF:
				return fbh::bf16_bits_to_f32(((const uint16_t *) p)[i]);
			default:
				return ((const float *) p)[i];
		}
	}

	void
	store_elem(void *p, cudaDataType_t t, size_t i, float v)
	{
		switch (t)
		{
			case CUDA_R_16F:
				((uint16_t *) p)[i] = fbh::f32_to_f16_bits(v);
				break;
			case CUDA_R_16BF:
				((uint16_t *) p)[i] = fbh::f32_to_bf16_bits(v);
				break;
			default:
				((float *) p)[i] = v;
				break;
		}
	}

	bool
	type_ok(cudaDataType_t t)
	{
		return t == CUDA_R_16F || t == CUDA_R_16BF || t == CUDA_R_32F;
	}

	/*
	 * D = alpha op(A) op(B) + beta C (+ bias[i] on row i), column-major;
	 * the inputs converted exactly to fp32, fp32 sums (OpenBLAS), D rounded
	 * to its type.  C may be D.
	 */
	void
	ref_gemm(bool ta, bool tb, int m, int n, int k, float alpha,
			 const void *A, cudaDataType_t at, int lda,
			 const void *B, cudaDataType_t bt, int ldb, float beta,
			 const void *C, cudaDataType_t ct, int ldc,
			 void *D, cudaDataType_t dt, int ldd, const void *bias, cudaDataType_t biast)
	{
		std::vector<float> a((size_t) m * k),
					b((size_t) k * n),
					d((size_t) m * n);

		/* op(A) as m x k and op(B) as k x n, column-major, packed */
		for (int j = 0; j < k; j++)
			for (int i = 0; i < m; i++)
				a[(size_t) j * m + i] = ta ? load_elem(A, at, (size_t) i * lda + j)
					: load_elem(A, at, (size_t) j * lda + i);
		for (int j = 0; j < n; j++)
			for (int i = 0; i < k; i++)
				b[(size_t) j * k + i] = tb ? load_elem(B, bt, (size_t) i * ldb + j)
					: load_elem(B, bt, (size_t) j * ldb + i);
		cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), m,
					b.data(), k, 0.0f, d.data(), m);
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++)
			{
				float		v = alpha * d[(size_t) j * m + i];

				if (beta != 0.0f)
					v += beta * load_elem(C, ct, (size_t) j * ldc + i);
				if (bias != NULL)
					v += load_elem(bias, biast, (size_t) i);
				store_elem(D, dt, (size_t) j * ldd + i, v);
			}
	}
}

struct fbh_cublas
{
	cudaStream_t stream;
};

const char *
cublasGetStatusString(cublasStatus_t s)
{
	switch (s)
	{
		case CUBLAS_STATUS_SUCCESS:
			return "CUBLAS_STATUS_SUCCESS";
		case CUBLAS_STATUS_NOT_INITIALIZED:
			return "CUBLAS_STATUS_NOT_INITIALIZED";
		case CUBLAS_STATUS_ALLOC_FAILED:
			return "CUBLAS_STATUS_ALLOC_FAILED";
		case CUBLAS_STATUS_INVALID_VALUE:
			return "CUBLAS_STATUS_INVALID_VALUE";
		case CUBLAS_STATUS_EXECUTION_FAILED:
			return "CUBLAS_STATUS_EXECUTION_FAILED";
		case CUBLAS_STATUS_NOT_SUPPORTED:
			return "CUBLAS_STATUS_NOT_SUPPORTED";
	}
	return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t
cublasCreate(cublasHandle_t *h)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	if (entry_check() != cudaSuccess)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	*h = new fbh_cublas();
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasDestroy(cublasHandle_t h)
{
	delete h;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
	h->stream = s;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
					int m, int n, int k, const void *alpha,
					const void *const A[], cudaDataType_t at, int lda,
					const void *const B[], cudaDataType_t bt, int ldb,
					const void *beta, void *const C[], cudaDataType_t ct, int ldc,
					int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	float		al = *(const float *) alpha,
				be = *(const float *) beta;

	(void) algo;
	if (entry_check() != cudaSuccess)
		return CUBLAS_STATUS_EXECUTION_FAILED;
	if (compute != CUBLAS_COMPUTE_32F || !type_ok(at) || !type_ok(bt) || !type_ok(ct) ||
		at != bt || at == CUDA_R_32F || m < 0 || n < 0 || k < 0 || batch < 0 ||
		lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m)
		return CUBLAS_STATUS_INVALID_VALUE;
	enqueue(h->stream, [=]() -> cudaError_t
	{
		/* the pointer arrays are device memory, read when the GEMM runs */
		for (int i = 0; i < batch; i++)
		{
			if (!in_device(A[i], 1) || !in_device(B[i], 1) || !in_device(C[i], 1))
			{
				failure = "cublasGemmBatchedEx: a pointer outside device memory";
				return cudaErrorIllegalAddress;
			}
			ref_gemm(ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, al, A[i], at, lda, B[i], bt,
					 ldb, be, C[i], ct, ldc, C[i], ct, ldc, NULL, CUDA_R_32F);
		}
		return cudaSuccess;
	});
	return CUBLAS_STATUS_SUCCESS;
}

struct fbh_lt
{
	int			unused;
};

struct fbh_lt_desc
{
	cublasComputeType_t compute;
	cudaDataType_t scale;
	cublasOperation_t ta,
				tb;
	cublasLtEpilogue_t epilogue;
	const void *bias;
};

struct fbh_lt_layout
{
	cudaDataType_t type;
	uint64_t	rows,
				cols;
	int64_t		ld;
};

struct fbh_lt_pref
{
	size_t		workspace;
};

cublasStatus_t
cublasLtCreate(cublasLtHandle_t *h)
{
	std::lock_guard<std::recursive_mutex> g(mu);

	if (entry_check() != cudaSuccess)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	*h = new fbh_lt();
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtDestroy(cublasLtHandle_t h)
{
	delete h;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t scale)
{
	if (c != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	*d = new fbh_lt_desc();
	(*d)->compute = c;
	(*d)->scale = scale;
	(*d)->ta = CUBLAS_OP_N;
	(*d)->tb = CUBLAS_OP_N;
	(*d)->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
	(*d)->bias = NULL;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
	delete d;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
							   const void *v, size_t n)
{
	switch (a)
	{
		case CUBLASLT_MATMUL_DESC_TRANSA:
		case CUBLASLT_MATMUL_DESC_TRANSB:
			{
				int32_t		op;

				if (n != sizeof(int32_t))
					return CUBLAS_STATUS_INVALID_VALUE;
				memcpy(&op, v, sizeof(op));
				if (a == CUBLASLT_MATMUL_DESC_TRANSA)
					d->ta = (cublasOperation_t) op;
				else
					d->tb = (cublasOperation_t) op;
				return CUBLAS_STATUS_SUCCESS;
			}
		case CUBLASLT_MATMUL_DESC_EPILOGUE:
			{
				uint32_t	ep;

				if (n != sizeof(uint32_t))
					return CUBLAS_STATUS_INVALID_VALUE;
				memcpy(&ep, v, sizeof(ep));
				if (ep != CUBLASLT_EPILOGUE_DEFAULT && ep != CUBLASLT_EPILOGUE_BIAS)
					return CUBLAS_STATUS_NOT_SUPPORTED;
				d->epilogue = (cublasLtEpilogue_t) ep;
				return CUBLAS_STATUS_SUCCESS;
			}
		case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
			if (n != sizeof(void *))
				return CUBLAS_STATUS_INVALID_VALUE;
			memcpy(&d->bias, v, sizeof(void *));
			return CUBLAS_STATUS_SUCCESS;
	}
	return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t
cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows,
						   uint64_t cols, int64_t ld)
{
	if (!type_ok(t) || ld < (int64_t) rows)
		return CUBLAS_STATUS_INVALID_VALUE;
	*l = new fbh_lt_layout();
	(*l)->type = t;
	(*l)->rows = rows;
	(*l)->cols = cols;
	(*l)->ld = ld;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
	delete l;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
	*p = new fbh_lt_pref();
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
	delete p;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
									 cublasLtMatmulPreferenceAttributes_t a, const void *v,
									 size_t n)
{
	if (a != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES || n != sizeof(uint64_t))
		return CUBLAS_STATUS_INVALID_VALUE;
	memcpy(&p->workspace, v, sizeof(uint64_t));
	return CUBLAS_STATUS_SUCCESS;
}

/* Shapes of a matmul: op(A) m x k, op(B) k x n, C and D m x n. */
static bool
lt_shapes(const fbh_lt_desc *d, const fbh_lt_layout *a, const fbh_lt_layout *b,
		  const fbh_lt_layout *c, const fbh_lt_layout *dl, int *m, int *n, int *k)
{
	uint64_t	am = d->ta == CUBLAS_OP_T ? a->cols : a->rows,
				ak = d->ta == CUBLAS_OP_T ? a->rows : a->cols,
				bk = d->tb == CUBLAS_OP_T ? b->cols : b->rows,
				bn = d->tb == CUBLAS_OP_T ? b->rows : b->cols;

	if (ak != bk || c->rows != am || c->cols != bn || dl->rows != am || dl->cols != bn ||
		a->type != b->type || a->type == CUDA_R_32F || c->type != dl->type)
		return false;
	*m = (int) am;
	*n = (int) bn;
	*k = (int) ak;
	return true;
}

cublasStatus_t
cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
							   cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
							   cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
							   cublasLtMatmulPreference_t p, int requested,
							   cublasLtMatmulHeuristicResult_t *results, int *returned)
{
	int			m,
				n,
				k;

	(void) h;
	(void) p;
	*returned = 0;
	if (requested < 1)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (!lt_shapes(d, a, b, c, dl, &m, &n, &k))
		return CUBLAS_STATUS_NOT_SUPPORTED;
	memset(&results[0], 0, sizeof(results[0]));
	results[0].state = CUBLAS_STATUS_SUCCESS;
	results[0].wavesCount = 1.0f;
	*returned = 1;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
			   const void *A, cublasLtMatrixLayout_t al, const void *B,
			   cublasLtMatrixLayout_t bl, const void *beta, const void *C,
			   cublasLtMatrixLayout_t cl, void *D, cublasLtMatrixLayout_t dl,
			   const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
			   cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> g(mu);
	float		alf = *(const float *) alpha,
				bet = *(const float *) beta;
	int			m,
				n,
				k;
	fbh_lt_desc desc = *d;
	fbh_lt_layout la = *al,
				lb = *bl,
				lc = *cl,
				ld = *dl;

	(void) h;
	(void) algo;
	(void) workspace;
	(void) workspace_bytes;
	if (entry_check() != cudaSuccess)
		return CUBLAS_STATUS_EXECUTION_FAILED;
	if (!lt_shapes(d, al, bl, cl, dl, &m, &n, &k))
		return CUBLAS_STATUS_NOT_SUPPORTED;
	if (desc.epilogue == CUBLASLT_EPILOGUE_BIAS && desc.bias == NULL)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (m == 0 || n == 0)
		return CUBLAS_STATUS_SUCCESS;
	if (!in_device(A, 1) || !in_device(B, 1) || !in_device(D, 1) ||
		(bet != 0.0f && !in_device(C, 1)))
		return CUBLAS_STATUS_INVALID_VALUE;
	enqueue(s, [=]() -> cudaError_t
	{
		/* the bias has the output's type (cuBLASLt's default) */
		ref_gemm(desc.ta == CUBLAS_OP_T, desc.tb == CUBLAS_OP_T, m, n, k, alf,
				 A, la.type, (int) la.ld, B, lb.type, (int) lb.ld, bet, C, lc.type, (int) lc.ld,
				 D, ld.type, (int) ld.ld,
				 desc.epilogue == CUBLASLT_EPILOGUE_BIAS ? desc.bias : NULL, ld.type);
		return cudaSuccess;
	});
	return CUBLAS_STATUS_SUCCESS;
}
