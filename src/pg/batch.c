/*
 * batch.c — finbert calls of a per-row query evaluated in batches: a
 * planner hook and the custom plan node it places, "Finbert Batch".
 *
 *   SELECT id, finbert_sentiment(body) FROM news
 *
 * runs the function once per row, each a request of one text.  After
 * standard planning (chained to any other planner_hook), the hook walks the
 * finished plan; where a node evaluates finbert's scalar functions over the
 * rows of its child, it places a Finbert Batch node that pulls a batch of
 * rows from below, evaluates the calls' arguments for all of them, runs
 * each distinct call as one request (FinbertExecute: inline or one worker
 * request) and records every text's result in a memo (memo.c).  The rows
 * then go up unchanged and in order; the calls are evaluated per row as
 * before, and FinbertExecute finds their results in the memo.  So results,
 * NULL handling and errors are those of per-row evaluation by construction:
 * a call that was not batched, or whose batch failed (the batch runs in a
 * subtransaction), is simply computed per row when it is evaluated, and
 * raises its own error then.
 *
 * Placement:
 *  - a scan (Seq Scan, Index Scan, ...) projecting finbert calls, or with
 *    a finbert call in its filter: the node goes above the scan and takes
 *    over its projection and those filter clauses; the scan returns the
 *    columns they need and keeps its other clauses, so rows it filters out
 *    are never computed;
 *  - a Result, ProjectSet or join whose target list calls finbert on
 *    columns of its outer child, or an Agg whose aggregates' arguments
 *    do (count(finbert_sentiment(body))): the node goes between them and
 *    passes the child's rows through.
 * A call is batched when its arguments are plain columns, constants,
 * parameters or leakproof non-volatile functions of them (evaluating them
 * ahead cannot fail or have effects); reading rows ahead is allowed only
 * when the subtree below has no volatile functions.  Scrollable cursors,
 * the inner side of a merge join (mark/restore) and everything else stay
 * per-row.  Batches grow (1, 4, 16, ... up to finbert.batch_rows rows,
 * cut by finbert.max_batch_tokens estimated tokens), and a batch of one
 * row computes per row, so LIMIT 1 costs what it costs without the node.
 *
 * In a parallel query (each process batches its own rows) PostgreSQL
 * allows no subtransaction: there a failed batch raises its error at once.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/nodeCustom.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "finbert_pg.h"

#define BATCH_NODE_NAME		"Finbert Batch"
#define BATCH_FIRST_ROWS	1
#define BATCH_GROWTH		4

/*
 * The functions that batch, by C symbol (prosrc): the scalar ones and the
 * set-returning finbert_entities(text [, model]).
 */
typedef struct BatchFunc
{
	const char *symbol;
	FinbertTask task;
	char	  **guc_value;		/* default model setting, or NULL */
	const char *guc_name;
	bool		pinned;			/* (text, model[, pooling], pin): scaleout */
} BatchFunc;

static const BatchFunc batch_funcs[] = {
	{"finbert_sentiment", FINBERT_TASK_CLASSIFY, &finbert_sentiment_model, "finbert.sentiment_model"},
	{"finbert_industry", FINBERT_TASK_CLASSIFY, &finbert_industry_model, "finbert.industry_model"},
	{"finbert_type", FINBERT_TASK_CLASSIFY, &finbert_type_model, "finbert.type_model"},
	{"finbert_classify", FINBERT_TASK_CLASSIFY, NULL, NULL},
	{"finbert_scores", FINBERT_TASK_CLASSIFY, NULL, NULL},
	{"finbert_entities", FINBERT_TASK_ENTITIES, &finbert_ner_model, "finbert.ner_model"},
	{"finbert_companies", FINBERT_TASK_ENTITIES, &finbert_ner_model, "finbert.ner_model"},
	{"finbert_persons", FINBERT_TASK_ENTITIES, &finbert_ner_model, "finbert.ner_model"},
	{"finbert_embed", FINBERT_TASK_EMBED, &finbert_embed_model, "finbert.embed_model"},
	{"finbert_tokenize", FINBERT_TASK_TOKENIZE, &finbert_embed_model, "finbert.embed_model"},
	/* the pinned forms that shards compute (README: Scale-out) */
	{"finbert_classify_pinned", FINBERT_TASK_CLASSIFY, NULL, NULL, true},
	{"finbert_scores_pinned", FINBERT_TASK_CLASSIFY, NULL, NULL, true},
	{"finbert_companies_pinned", FINBERT_TASK_ENTITIES, NULL, NULL, true},
	{"finbert_persons_pinned", FINBERT_TASK_ENTITIES, NULL, NULL, true},
	{"finbert_embed_pinned", FINBERT_TASK_EMBED, NULL, NULL, true},
};
#define N_BATCH_FUNCS lengthof(batch_funcs)

static planner_hook_type prev_planner_hook = NULL;

/* ------------------------------------------------------------------------
 * Which functions are finbert's: pg_proc, cached per backend
 * ------------------------------------------------------------------------ */
typedef struct FuncCacheEntry
{
	Oid			funcid;
	int			index;			/* into batch_funcs, or -1 */
} FuncCacheEntry;

static HTAB *func_cache = NULL;
static bool func_cache_stale = false;

/*
 * pg_proc changed: the cache is rebuilt at the next lookup (not here: an
 * invalidation can arrive in the middle of one).
 */
static void
InvalidateFuncCache(Datum arg, int cacheid, uint32 hashvalue)
{
	func_cache_stale = true;
}

/* The batch_funcs index of a scalar finbert function taking text, or -1. */
static int
LookupBatchFunc(Oid funcid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	int			index = -1;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return -1;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prolang == ClanguageId &&
		proc->pronargs >= 1 && proc->proargtypes.values[0] == TEXTOID)
	{
		bool		isnull;
		Datum		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
		Datum		src;

		if (!isnull && strcmp(TextDatumGetCString(bin), "$libdir/finbert") == 0)
		{
			char	   *symbol;

			src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
			symbol = isnull ? "" : TextDatumGetCString(src);
			for (int i = 0; i < (int) N_BATCH_FUNCS; i++)
				if (strcmp(symbol, batch_funcs[i].symbol) == 0 &&
					proc->proretset == (batch_funcs[i].task == FINBERT_TASK_ENTITIES &&
										strcmp(symbol, "finbert_entities") == 0))
					index = i;
		}
	}
	ReleaseSysCache(tup);
	return index;
}

static int
BatchFuncIndex(Oid funcid)
{
	FuncCacheEntry *e;
	int			index;

	if (func_cache_stale && func_cache)
	{
		hash_destroy(func_cache);
		func_cache = NULL;
	}
	func_cache_stale = false;
	if (func_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(FuncCacheEntry);
		func_cache = hash_create("finbert batch functions", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS);
	}
	e = hash_search(func_cache, &funcid, HASH_FIND, NULL);
	if (e)
		return e->index;
	index = LookupBatchFunc(funcid);
	e = hash_search(func_cache, &funcid, HASH_ENTER, NULL);
	e->index = index;
	return index;
}

/* ------------------------------------------------------------------------
 * Plan-time checks
 * ------------------------------------------------------------------------ */
static bool
ContainsFinbertCall(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && BatchFuncIndex(((FuncExpr *) node)->funcid) >= 0)
		return true;
	return expression_tree_walker(node, ContainsFinbertCall, context);
}

static bool
LeakproofStable(Oid funcid)
{
	return get_func_leakproof(funcid) && func_volatile(funcid) != PROVOLATILE_VOLATILE;
}

/*
 * Can an argument be evaluated ahead, for rows that per-row evaluation
 * might never reach?  Only when that can neither fail nor have effects:
 * columns, constants, parameters, relabelings and leakproof non-volatile
 * functions of them; no finbert call.
 */
static bool
UnsafeArg(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_Const:
		case T_Param:
		case T_RelabelType:
		case T_CollateExpr:
			break;
		case T_FuncExpr:
			if (((FuncExpr *) node)->funcretset ||
				BatchFuncIndex(((FuncExpr *) node)->funcid) >= 0 ||
				!LeakproofStable(((FuncExpr *) node)->funcid))
				return true;
			break;
		case T_OpExpr:
			set_opfuncid((OpExpr *) node);
			if (((OpExpr *) node)->opretset ||
				!LeakproofStable(((OpExpr *) node)->opfuncid))
				return true;
			break;
		default:
			return true;
	}
	return expression_tree_walker(node, UnsafeArg, context);
}

typedef struct CollectCalls
{
	List	   *calls;			/* FuncExpr, distinct */
	int			only_varno;		/* Vars of the arguments must have it (0: any) */
	bool		bad_var;
} CollectCalls;

static bool
CheckVarno(Node *node, void *context)
{
	CollectCalls *cc = context;

	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		if (cc->only_varno != 0 && ((Var *) node)->varno != cc->only_varno)
			cc->bad_var = true;
		return false;
	}
	return expression_tree_walker(node, CheckVarno, context);
}

/*
 * The batchable calls in the arguments (and filters) of the aggregates of
 * an Agg node: those are evaluated per input row; the rest of its target
 * list per group.
 */
static bool CollectBatchCalls(Node *node, void *context);

static bool
CollectAggrefCalls(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		Aggref	   *a = (Aggref *) node;

		(void) CollectBatchCalls((Node *) a->args, context);
		(void) CollectBatchCalls((Node *) a->aggfilter, context);
		return false;
	}
	return expression_tree_walker(node, CollectAggrefCalls, context);
}

/* The batchable finbert calls of an expression tree. */
static bool
CollectBatchCalls(Node *node, void *context)
{
	CollectCalls *cc = context;

	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && BatchFuncIndex(((FuncExpr *) node)->funcid) >= 0)
	{
		FuncExpr   *f = (FuncExpr *) node;
		bool		ok = true;
		ListCell   *lc;
		CollectCalls check = {NIL, cc->only_varno, false};

		foreach(lc, f->args)
			ok = ok && !UnsafeArg(lfirst(lc), NULL);
		(void) CheckVarno((Node *) f->args, &check);
		if (ok && !check.bad_var && !list_member(cc->calls, f))
			cc->calls = lappend(cc->calls, f);
		/* a finbert call nested in the arguments stays per-row */
		return false;
	}
	return expression_tree_walker(node, CollectBatchCalls, context);
}

static bool
ContainsSubPlan(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubPlan) || IsA(node, AlternativeSubPlan))
		return true;
	return expression_tree_walker(node, ContainsSubPlan, context);
}

/* PlannedStmt.subplans of the plan being walked (SubPlans, CTEs). */
static List *walk_subplans = NIL;

static bool PlanHasVolatile(Plan *plan);

static Plan *
SubplanById(int plan_id)
{
	if (plan_id < 1 || plan_id > list_length(walk_subplans))
		return NULL;
	return list_nth(walk_subplans, plan_id - 1);
}

static bool
VolatileSubPlan(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubPlan) && PlanHasVolatile(SubplanById(((SubPlan *) node)->plan_id)))
		return true;
	return expression_tree_walker(node, VolatileSubPlan, context);
}

/* A volatile function in an expression, or in a subquery it runs. */
static bool
HasVolatile(Node *node)
{
	return contain_volatile_functions(node) || VolatileSubPlan(node, NULL);
}

/*
 * Any volatile function evaluated in this plan subtree (or in the CTEs
 * and subqueries it runs)?  Reading its rows ahead would run them for
 * rows a LIMIT above might never ask for.
 */
static bool
PlanHasVolatile(Plan *plan)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	check_stack_depth();
	if (HasVolatile((Node *) plan->targetlist) || HasVolatile((Node *) plan->qual))
		return true;
	switch (nodeTag(plan))
	{
		case T_FunctionScan:
			if (HasVolatile((Node *) ((FunctionScan *) plan)->functions))
				return true;
			break;
		case T_ValuesScan:
			if (HasVolatile((Node *) ((ValuesScan *) plan)->values_lists))
				return true;
			break;
		case T_Result:
			if (HasVolatile(((Result *) plan)->resconstantqual))
				return true;
			break;
		case T_CteScan:
			if (PlanHasVolatile(SubplanById(((CteScan *) plan)->ctePlanId)))
				return true;
			break;
		case T_SubqueryScan:
			return PlanHasVolatile(((SubqueryScan *) plan)->subplan);
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				if (PlanHasVolatile(lfirst(lc)))
					return true;
			break;
		case T_MergeAppend:
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				if (PlanHasVolatile(lfirst(lc)))
					return true;
			break;
		case T_ModifyTable:
		case T_CustomScan:
		case T_ForeignScan:
			return true;		/* reading ahead could change what they do */
		default:
			break;
	}
	return PlanHasVolatile(plan->lefttree) || PlanHasVolatile(plan->righttree);
}

/* ------------------------------------------------------------------------
 * Building the node
 * ------------------------------------------------------------------------ */
static CustomScanMethods BatchScanMethods;

typedef struct WalkContext
{
	int			next_plan_node_id;
} WalkContext;

static bool
MaxPlanNodeId(Plan *plan, int *max)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	*max = Max(*max, plan->plan_node_id);
	MaxPlanNodeId(plan->lefttree, max);
	MaxPlanNodeId(plan->righttree, max);
	switch (nodeTag(plan))
	{
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				MaxPlanNodeId(lfirst(lc), max);
			break;
		case T_MergeAppend:
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				MaxPlanNodeId(lfirst(lc), max);
			break;
		case T_BitmapAnd:
			foreach(lc, ((BitmapAnd *) plan)->bitmapplans)
				MaxPlanNodeId(lfirst(lc), max);
			break;
		case T_BitmapOr:
			foreach(lc, ((BitmapOr *) plan)->bitmapplans)
				MaxPlanNodeId(lfirst(lc), max);
			break;
		case T_SubqueryScan:
			MaxPlanNodeId(((SubqueryScan *) plan)->subplan, max);
			break;
		case T_CustomScan:
			foreach(lc, ((CustomScan *) plan)->custom_plans)
				MaxPlanNodeId(lfirst(lc), max);
			break;
		default:
			break;
	}
	return false;
}

static Var *
ColumnVar(int varno, AttrNumber attno, Node *expr)
{
	return makeVar(varno, attno, exprType(expr), exprTypmod(expr),
				   exprCollation(expr), 0);
}

static CustomScan *
MakeBatchNode(WalkContext *wc, Plan *child, List *calls)
{
	CustomScan *cs = makeNode(CustomScan);
	List	   *kinds = NIL;
	ListCell   *lc;

	foreach(lc, calls)
		kinds = lappend(kinds, makeInteger(BatchFuncIndex(((FuncExpr *) lfirst(lc))->funcid)));
	cs->scan.plan.startup_cost = child->startup_cost;
	cs->scan.plan.total_cost = child->total_cost;
	cs->scan.plan.plan_rows = child->plan_rows;
	cs->scan.plan.plan_width = child->plan_width;
	cs->scan.plan.parallel_aware = false;
	cs->scan.plan.parallel_safe = child->parallel_safe;
	cs->scan.plan.plan_node_id = wc->next_plan_node_id++;
	cs->scan.plan.extParam = bms_copy(child->extParam);
	cs->scan.plan.allParam = bms_copy(child->allParam);
	cs->scan.plan.lefttree = child;
	cs->scan.scanrelid = 0;
	cs->flags = 0;
	cs->custom_exprs = calls;
	cs->custom_private = kinds;
	cs->methods = &BatchScanMethods;
	return cs;
}

/* Rewrites Vars of varno (or OUTER_VAR) to INDEX_VAR columns of a tlist. */
typedef struct ToIndexVar
{
	int			from_varno;
	List	   *columns;		/* Var, position = attno in the scan tuple */
} ToIndexVar;

static Node *
ToIndexVarMutator(Node *node, ToIndexVar *ctx)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var) && ((Var *) node)->varno == ctx->from_varno &&
		((Var *) node)->varlevelsup == 0)
	{
		Var		   *v = (Var *) node;
		int			pos = 1;
		ListCell   *lc;

		foreach(lc, ctx->columns)
		{
			Var		   *c = lfirst(lc);

			if (c->varattno == v->varattno)
			{
				Var		   *r = copyObject(v);

				r->varno = INDEX_VAR;
				r->varattno = pos;
				return (Node *) r;
			}
			pos++;
		}
		elog(ERROR, "finbert batch: column %d not found", v->varattno);
	}
	return expression_tree_mutator(node, ToIndexVarMutator, ctx);
}

/* Volatile functions in what a scan reads its rows from? */
static bool
ScanSourceHasVolatile(Plan *plan)
{
	switch (nodeTag(plan))
	{
		case T_SubqueryScan:
			return PlanHasVolatile(((SubqueryScan *) plan)->subplan);
		case T_CteScan:
			return PlanHasVolatile(SubplanById(((CteScan *) plan)->ctePlanId));
		case T_FunctionScan:
			return HasVolatile((Node *) ((FunctionScan *) plan)->functions);
		case T_ValuesScan:
			return HasVolatile((Node *) ((ValuesScan *) plan)->values_lists);
		default:
			return false;
	}
}

/*
 * A scan projecting finbert calls (or filtering on them): a batch node
 * above it takes over the projection and those filter clauses.
 */
static Plan *
WrapScan(WalkContext *wc, Scan *scan)
{
	Plan	   *plan = &scan->plan;
	CollectCalls cc = {NIL, scan->scanrelid, false};
	List	   *moved_quals = NIL;
	List	   *kept_quals = NIL;
	List	   *vars;
	List	   *columns = NIL;
	List	   *leaf_tlist = NIL;
	List	   *scan_tlist = NIL;
	ToIndexVar ctx;
	CustomScan *cs;
	ListCell   *lc;
	int			pos = 1;

	(void) CollectBatchCalls((Node *) plan->targetlist, &cc);
	foreach(lc, plan->qual)
	{
		if (ContainsFinbertCall(lfirst(lc), NULL))
		{
			moved_quals = lappend(moved_quals, lfirst(lc));
			(void) CollectBatchCalls(lfirst(lc), &cc);
		}
		else
			kept_quals = lappend(kept_quals, lfirst(lc));
	}
	if (cc.calls == NIL)
		return plan;
	if (ContainsSubPlan((Node *) plan->targetlist, NULL) ||
		ContainsSubPlan((Node *) moved_quals, NULL))
		return plan;
	/* rows read ahead: the scan's clauses and source must be non-volatile */
	if (HasVolatile((Node *) kept_quals) || ScanSourceHasVolatile(plan))
		return plan;

	/* the columns the moved expressions read, each once */
	vars = pull_var_clause((Node *) list_concat(list_copy(plan->targetlist), moved_quals),
						   PVC_RECURSE_AGGREGATES | PVC_RECURSE_WINDOWFUNCS |
						   PVC_RECURSE_PLACEHOLDERS);
	foreach(lc, vars)
	{
		Var		   *v = lfirst(lc);
		ListCell   *lc2;
		bool		seen = false;

		if (v->varno != (int) scan->scanrelid || v->varlevelsup != 0)
			return plan;
		foreach(lc2, columns)
			seen = seen || ((Var *) lfirst(lc2))->varattno == v->varattno;
		if (!seen)
			columns = lappend(columns, v);
	}
	foreach(lc, columns)
	{
		Var		   *v = copyObject((Var *) lfirst(lc));

		v->location = -1;
		leaf_tlist = lappend(leaf_tlist, makeTargetEntry((Expr *) v, pos, NULL, false));
		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry((Expr *) ColumnVar(OUTER_VAR, pos, (Node *) v),
											 pos, NULL, false));
		pos++;
	}

	ctx.from_varno = scan->scanrelid;
	ctx.columns = columns;
	cs = MakeBatchNode(wc, plan,
					   (List *) ToIndexVarMutator((Node *) cc.calls, &ctx));
	cs->scan.plan.targetlist = (List *) ToIndexVarMutator((Node *) plan->targetlist, &ctx);
	cs->scan.plan.qual = (List *) ToIndexVarMutator((Node *) moved_quals, &ctx);
	cs->custom_scan_tlist = scan_tlist;
	plan->targetlist = leaf_tlist;
	plan->qual = kept_quals;
	return &cs->scan.plan;
}

/* Nested-loop parameters replaced by the outer columns they are set from. */
static Node *
NestParamsMutator(Node *node, List *nest_params)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXEC)
	{
		ListCell   *lc;

		foreach(lc, nest_params)
		{
			NestLoopParam *nlp = lfirst(lc);

			if (nlp->paramno == ((Param *) node)->paramid)
				return (Node *) copyObject(nlp->paramval);
		}
	}
	return expression_tree_mutator(node, NestParamsMutator, nest_params);
}

/*
 * A Result, ProjectSet or join calling finbert on columns of its outer
 * child: a batch node between them passes the child's rows through.
 * Also a lateral function scan on the inner side of a nested loop,
 * FROM news n, finbert_entities(n.body) e: its call reads the outer row
 * through nested-loop parameters.
 */
static void
InsertBelow(WalkContext *wc, Plan *plan)
{
	Plan	   *child = plan->lefttree;
	CollectCalls cc = {NIL, OUTER_VAR, false};
	List	   *columns = NIL;
	List	   *tlist = NIL;
	List	   *scan_tlist = NIL;
	ToIndexVar ctx;
	CustomScan *cs;
	ListCell   *lc;
	int			pos = 1;

	if (child == NULL)
		return;
	if (IsA(plan, Agg))
	{
		(void) CollectAggrefCalls((Node *) plan->targetlist, &cc);
		(void) CollectAggrefCalls((Node *) plan->qual, &cc);
	}
	else
		(void) CollectBatchCalls((Node *) plan->targetlist, &cc);
	if (IsA(plan, NestLoop) && plan->righttree && IsA(plan->righttree, FunctionScan))
	{
		ListCell   *lf;

		foreach(lf, ((FunctionScan *) plan->righttree)->functions)
		{
			RangeTblFunction *rtf = lfirst(lf);

			(void) CollectBatchCalls(NestParamsMutator(rtf->funcexpr,
													   ((NestLoop *) plan)->nestParams),
									 &cc);
		}
	}
	if (cc.calls == NIL || PlanHasVolatile(child))
		return;
	foreach(lc, child->targetlist)
	{
		TargetEntry *tle = lfirst(lc);
		Var		   *col = ColumnVar(OUTER_VAR, pos, (Node *) tle->expr);

		columns = lappend(columns, col);
		scan_tlist = lappend(scan_tlist, makeTargetEntry((Expr *) col, pos, NULL, false));
		tlist = lappend(tlist,
						makeTargetEntry((Expr *) ColumnVar(INDEX_VAR, pos, (Node *) tle->expr),
										pos, NULL, false));
		pos++;
	}
	ctx.from_varno = OUTER_VAR;
	ctx.columns = columns;
	cs = MakeBatchNode(wc, child,
					   (List *) ToIndexVarMutator((Node *) cc.calls, &ctx));
	cs->scan.plan.targetlist = tlist;
	cs->custom_scan_tlist = scan_tlist;
	plan->lefttree = &cs->scan.plan;
}

static Plan *WalkPlan(WalkContext *wc, Plan *plan, bool needs_mark);

static List *
WalkList(WalkContext *wc, List *plans)
{
	ListCell   *lc;

	foreach(lc, plans)
		lfirst(lc) = WalkPlan(wc, lfirst(lc), false);
	return plans;
}

static Plan *
WalkPlan(WalkContext *wc, Plan *plan, bool needs_mark)
{
	if (plan == NULL)
		return NULL;
	check_stack_depth();
	plan->lefttree = WalkPlan(wc, plan->lefttree, false);
	/* a merge join marks and restores its inner side: no batch node there */
	plan->righttree = WalkPlan(wc, plan->righttree, IsA(plan, MergeJoin));
	switch (nodeTag(plan))
	{
		case T_Append:
			WalkList(wc, ((Append *) plan)->appendplans);
			break;
		case T_MergeAppend:
			WalkList(wc, ((MergeAppend *) plan)->mergeplans);
			break;
		case T_SubqueryScan:
			((SubqueryScan *) plan)->subplan =
				WalkPlan(wc, ((SubqueryScan *) plan)->subplan, false);
			break;
		default:
			break;
	}

	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_SubqueryScan:
		case T_FunctionScan:
		case T_ValuesScan:
		case T_CteScan:
			if (!needs_mark)
				return WrapScan(wc, (Scan *) plan);
			break;
		case T_Result:
		case T_ProjectSet:
		case T_NestLoop:
		case T_HashJoin:
		case T_MergeJoin:
		case T_Agg:
			InsertBelow(wc, plan);
			break;
		default:
			break;
	}
	return plan;
}

static PlannedStmt *
BatchPlanner(Query *parse, const char *query_string, int cursor_options,
			 ParamListInfo bound_params)
{
	PlannedStmt *stmt;

	if (prev_planner_hook)
		stmt = prev_planner_hook(parse, query_string, cursor_options, bound_params);
	else
		stmt = standard_planner(parse, query_string, cursor_options, bound_params);

	/* a scrollable cursor needs backward scans, which the node has not */
	if (finbert_batching && stmt->commandType != CMD_UTILITY &&
		(cursor_options & CURSOR_OPT_SCROLL) == 0 && stmt->rowMarks == NIL)
	{
		WalkContext wc;
		int			max = 0;
		ListCell   *lc;

		MaxPlanNodeId(stmt->planTree, &max);
		foreach(lc, stmt->subplans)
			MaxPlanNodeId(lfirst(lc), &max);
		wc.next_plan_node_id = max + 1;
		walk_subplans = stmt->subplans;
		stmt->planTree = WalkPlan(&wc, stmt->planTree, false);
		WalkList(&wc, stmt->subplans);
		walk_subplans = NIL;
	}
	return stmt;
}

/* ------------------------------------------------------------------------
 * Execution
 * ------------------------------------------------------------------------ */
typedef struct BatchCall
{
	const BatchFunc *func;
	ExprState  *text;
	ExprState  *model;			/* NULL: the function's setting */
	ExprState  *pooling;		/* NULL: 'mean' (embed only) */
	ExprState  *pin;			/* pinned forms only */
} BatchCall;

/* One call's arguments for one row, when the function will be called. */
typedef struct CallArgs
{
	bool		valid;
	fb_text		text;
	char	   *model;
	char	   *pin;			/* NULL unless pinned */
	char	   *key;			/* the memo's model key (FinbertMemoModelKey) */
	fb_pooling	pooling;
} CallArgs;

typedef struct BatchState
{
	CustomScanState css;
	int			ncalls;
	BatchCall  *calls;
	FinbertMemo *memo;			/* results of the buffered batch */
	FinbertMemo *pending;		/* texts of the request being built */
	MinimalTuple *rows;
	CallArgs   *args;			/* rows * ncalls */
	int			capacity;
	int			nrows;
	int			next;
	int			next_size;
	bool		child_done;
	bool		progress_started;
	bool		progress_owner;
	MemoryContextCallback end_callback;
	/* EXPLAIN ANALYZE */
	int64		batches;
	int64		requests;
	int64		failed;
} BatchState;

static CustomExecMethods BatchExecMethods;

static Node *
CreateBatchState(CustomScan *cscan)
{
	BatchState *bs = (BatchState *) newNode(sizeof(BatchState), T_CustomScanState);

	bs->css.methods = &BatchExecMethods;
	return (Node *) bs;
}

static void
EndProgress(BatchState *bs)
{
	if (bs->progress_started)
	{
		bs->progress_started = false;
		FinbertProgressEnd();
	}
}

/* The executor's memory goes (end or abort): nothing runs any more. */
static void
BatchContextGone(void *arg)
{
	EndProgress((BatchState *) arg);
}

static void
BeginBatch(CustomScanState *node, EState *estate, int eflags)
{
	BatchState *bs = (BatchState *) node;
	CustomScan *cs = (CustomScan *) node->ss.ps.plan;
	ListCell   *lc,
			   *lk;
	int			i = 0;

	outerPlanState(bs) = ExecInitNode(outerPlan(cs), estate, eflags);
	bs->ncalls = list_length(cs->custom_exprs);
	bs->calls = palloc0(sizeof(BatchCall) * Max(bs->ncalls, 1));
	forboth(lc, cs->custom_exprs, lk, cs->custom_private)
	{
		FuncExpr   *f = lfirst(lc);
		BatchCall  *c = &bs->calls[i++];

		c->func = &batch_funcs[intVal(lfirst(lk))];
		c->text = ExecInitExpr(linitial(f->args), &node->ss.ps);
		if (list_length(f->args) > 1)
			c->model = ExecInitExpr(lsecond(f->args), &node->ss.ps);
		if (c->func->pinned)
		{
			/* (text, model, pin) or (text, model, pooling, pin) */
			c->pin = ExecInitExpr(llast(f->args), &node->ss.ps);
			if (list_length(f->args) > 3)
				c->pooling = ExecInitExpr(lthird(f->args), &node->ss.ps);
		}
		else if (list_length(f->args) > 2)
			c->pooling = ExecInitExpr(lthird(f->args), &node->ss.ps);
	}
	bs->memo = FinbertMemoCreate(estate->es_query_cxt);
	bs->pending = FinbertMemoCreate(estate->es_query_cxt);
	bs->next_size = BATCH_FIRST_ROWS;
	bs->end_callback.func = BatchContextGone;
	bs->end_callback.arg = bs;
	MemoryContextRegisterResetCallback(estate->es_query_cxt, &bs->end_callback);
}

static bool
ParsePooling(const char *s, fb_pooling *out)
{
	if (pg_strcasecmp(s, "mean") == 0)
		*out = FB_POOL_MEAN;
	else if (pg_strcasecmp(s, "cls") == 0)
		*out = FB_POOL_CLS;
	else if (pg_strcasecmp(s, "pooler") == 0)
		*out = FB_POOL_POOLER;
	else
		return false;
	return true;
}

/* A text argument evaluated into the batch's memory, or NULL. */
static text *
EvalText(ExprState *state, ExprContext *econtext, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = ExecEvalExprSwitchContext(state, econtext, &isnull);
	MemoryContext old;
	text	   *t;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	t = (text *) PG_DETOAST_DATUM_COPY(d);
	MemoryContextSwitchTo(old);
	return t;
}

/*
 * The arguments of one call for the row in the scan tuple.  Invalid when
 * the function would not be called (a NULL argument: the functions are
 * strict) or would fail on its arguments (then it fails per row).
 */
static void
EvalCallArgs(BatchCall *c, ExprContext *econtext, MemoryContext cxt,
			 CallArgs *out)
{
	text	   *t = EvalText(c->text, econtext, cxt);

	out->valid = false;
	if (t == NULL || VARSIZE_ANY_EXHDR(t) > (Size) finbert_max_input_bytes)
		return;
	out->text.data = VARDATA_ANY(t);
	out->text.len = VARSIZE_ANY_EXHDR(t);
	if (c->model)
	{
		text	   *m = EvalText(c->model, econtext, cxt);

		if (m == NULL)
			return;
		out->model = MemoryContextStrdup(cxt, text_to_cstring(m));
	}
	else if (c->func->guc_value && *c->func->guc_value && (*c->func->guc_value)[0])
		out->model = MemoryContextStrdup(cxt, *c->func->guc_value);
	else
		return;
	/* as the SQL functions build their requests (classify.c, embed.c, ...) */
	out->pooling = c->func->task == FINBERT_TASK_EMBED ? FB_POOL_MEAN : (fb_pooling) 0;
	if (c->pooling)
	{
		text	   *p = EvalText(c->pooling, econtext, cxt);

		if (p == NULL || !ParsePooling(text_to_cstring(p), &out->pooling))
			return;
	}
	out->pin = NULL;
	if (c->pin)
	{
		text	   *p = EvalText(c->pin, econtext, cxt);

		if (p == NULL)
			return;
		out->pin = MemoryContextStrdup(cxt, text_to_cstring(p));
	}
	out->key = FinbertMemoModelKey(out->model, out->pin, cxt);
	out->valid = true;
}

/*
 * The memo's window key of a call: finbert.max_length, or 0 for a pinned
 * call, whose window is the model's full length (FinbertMemoLookup).
 */
static int
MemoMaxLength(const char *pin)
{
	return FinbertMemoWindowKey(pin, finbert_max_length);
}

/* Tokens a text will take at most, for the batch's token budget. */
static int64
EstimateTokens(const fb_text *t)
{
	int64		tokens = (int64) t->len / 4 + 2;

	return Min(tokens, (int64) finbert_max_length);
}

/*
 * Runs one request for the batch and records its results; false when it
 * failed (then its rows compute per row).  Cancels and the like are raised.
 */
static bool
RunRequest(BatchState *bs, FinbertRequest *req, const char *key, int64 *tokens)
{
	MemoryContext cxt = FinbertMemoContext(bs->memo);
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	FinbertResult *res = MemoryContextAllocZero(cxt, sizeof(FinbertResult));
	bool		ok = false;

	if (IsInParallelMode())
	{
		/* no subtransaction in a parallel query: an error ends it */
		MemoryContextSwitchTo(cxt);
		FinbertExecute(req, res);
		MemoryContextSwitchTo(old);
		ok = true;
	}
	else
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			FinbertExecute(req, res);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(old);
			CurrentResourceOwner = owner;
			ok = true;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(old);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(old);
			CurrentResourceOwner = owner;
			/* a cancel or timeout stops the statement, as per row */
			if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
				edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
				edata->elevel > ERROR)
				ReThrowError(edata);
			FreeErrorData(edata);
			bs->failed++;
		}
		PG_END_TRY();
	}
	if (!ok)
		return false;
	for (int i = 0; i < req->ntexts; i++)
		FinbertMemoAdd(bs->memo, req->task, key, req->pooling,
					   MemoMaxLength(req->pin), &req->texts[i], res, i);
	for (int i = 0; i < req->ntexts; i++)
		*tokens += EstimateTokens(&req->texts[i]);
	bs->requests++;
	return true;
}

/*
 * The requests of the buffered rows: for each call, one request per
 * distinct (model, pooling) over the texts not yet known.
 */
static int64
RunBatchRequests(BatchState *bs)
{
	MemoryContext cxt = FinbertMemoContext(bs->memo);
	int64		tokens = 0;

	for (int c = 0; c < bs->ncalls; c++)
	{
		const BatchFunc *func = bs->calls[c].func;

		for (;;)
		{
			FinbertRequest req = {0};
			fb_text    *texts = MemoryContextAlloc(cxt, sizeof(fb_text) * bs->nrows);
			const char *model = NULL;
			const char *key = NULL;
			const char *pin = NULL;
			fb_pooling	pooling = (fb_pooling) 0;

			/* the first row's (model, pooling) not yet done picks the group */
			FinbertMemoReset(bs->pending);
			for (int r = 0; r < bs->nrows; r++)
			{
				CallArgs   *a = &bs->args[r * bs->ncalls + c];

				if (!a->valid)
					continue;
				if (model == NULL)
				{
					model = a->model;
					key = a->key;
					pin = a->pin;
					pooling = a->pooling;
				}
				if (strcmp(a->key, key) != 0 || a->pooling != pooling)
					continue;
				a->valid = false;	/* taken */
				if (FinbertMemoContains(bs->memo, func->task, key, pooling,
										MemoMaxLength(pin), &a->text) ||
					FinbertMemoContains(bs->pending, func->task, key, pooling,
										MemoMaxLength(pin), &a->text))
					continue;
				FinbertMemoAdd(bs->pending, func->task, key, pooling,
							   MemoMaxLength(pin), &a->text, NULL, 0);
				texts[req.ntexts++] = a->text;
			}
			if (model == NULL)
				break;
			if (req.ntexts == 0)
				continue;
			req.task = func->task;
			req.model = model;
			req.guc = bs->calls[c].model ? NULL : func->guc_name;
			req.texts = texts;
			req.pooling = pooling;
			req.pin = pin;
			(void) RunRequest(bs, &req, key, &tokens);
			CHECK_FOR_INTERRUPTS();
		}
	}
	FinbertMemoReset(bs->pending);
	return tokens;
}

/* Pulls the next batch of rows from the child and runs its requests. */
static void
LoadBatch(BatchState *bs)
{
	PlanState  *child = outerPlanState(bs);
	ExprContext *econtext = bs->css.ss.ps.ps_ExprContext;
	MemoryContext cxt;
	int			limit = Min(bs->next_size, Max(finbert_batch_rows, 1));
	int64		budget = Max(finbert_max_batch_tokens, 1);
	int64		est = 0;
	int64		tokens;
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;

	FinbertMemoReset(bs->memo);
	cxt = FinbertMemoContext(bs->memo);
	bs->nrows = 0;
	bs->next = 0;
	if (bs->capacity < limit)
	{
		bs->capacity = limit;
		bs->rows = MemoryContextAlloc(bs->css.ss.ps.state->es_query_cxt,
									  sizeof(MinimalTuple) * limit);
	}
	bs->args = MemoryContextAllocZero(cxt, sizeof(CallArgs) * limit * Max(bs->ncalls, 1));

	while (bs->nrows < limit && (bs->nrows == 0 || est < budget))
	{
		TupleTableSlot *slot = ExecProcNode(child);
		MemoryContext old;

		if (TupIsNull(slot))
		{
			bs->child_done = true;
			break;
		}
		old = MemoryContextSwitchTo(cxt);
		bs->rows[bs->nrows] = ExecCopySlotMinimalTuple(slot);
		MemoryContextSwitchTo(old);
		/* the arguments read the scan slot (virtual, as compiled) */
		ExecForceStoreMinimalTuple(bs->rows[bs->nrows], bs->css.ss.ss_ScanTupleSlot, false);
		econtext->ecxt_scantuple = bs->css.ss.ss_ScanTupleSlot;
		for (int c = 0; c < bs->ncalls && utf8; c++)
		{
			CallArgs   *a = &bs->args[bs->nrows * bs->ncalls + c];

			EvalCallArgs(&bs->calls[c], econtext, cxt, a);
			if (a->valid)
				est += EstimateTokens(&a->text);
		}
		ResetExprContext(econtext);
		bs->nrows++;
	}
	if (bs->nrows == 0)
		return;
	bs->next_size = Min(bs->next_size * BATCH_GROWTH, Max(finbert_batch_rows, 1));

	if (!bs->progress_started)
	{
		const char *model = NULL;

		for (int k = 0; k < bs->nrows * bs->ncalls && model == NULL; k++)
			if (bs->args[k].valid)
				model = bs->args[k].model;
		bs->progress_owner = FinbertProgressStart(model, bs->css.ss.ps.plan->plan_rows);
		bs->progress_started = true;
	}
	/*
	 * A batch of one row gains nothing: its calls compute per row (no
	 * subtransaction, no memo), so LIMIT 1 costs what it costs per row.
	 */
	if (bs->nrows > 1)
		tokens = RunBatchRequests(bs);
	else
	{
		tokens = 0;
		for (int c = 0; c < bs->ncalls; c++)
			if (bs->args[c].valid)
				tokens += EstimateTokens(&bs->args[c].text);
	}
	bs->batches++;
	FinbertProgressBatch(bs->progress_owner, bs->nrows, tokens);
	FinbertMemoActivate(bs->memo);
}

static TupleTableSlot *
BatchNext(ScanState *ss)
{
	BatchState *bs = (BatchState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;

	if (bs->next >= bs->nrows)
	{
		if (bs->child_done)
		{
			FinbertMemoReset(bs->memo);
			EndProgress(bs);
			return ExecClearTuple(slot);
		}
		LoadBatch(bs);
		if (bs->nrows == 0)
		{
			EndProgress(bs);
			return ExecClearTuple(slot);
		}
	}
	ExecForceStoreMinimalTuple(bs->rows[bs->next++], slot, false);
	return slot;
}

/*
 * EvalPlanQual rechecks the row the child returns (its test tuple), per
 * row: nothing is batched there.
 */
static bool
BatchRecheck(ScanState *ss, TupleTableSlot *slot)
{
	TupleTableSlot *child = ExecProcNode(outerPlanState(ss));

	if (TupIsNull(child))
		return false;
	ExecCopySlot(slot, child);
	return true;
}

static TupleTableSlot *
ExecBatch(CustomScanState *node)
{
	return ExecScan(&node->ss, BatchNext, BatchRecheck);
}

static void
EndBatch(CustomScanState *node)
{
	BatchState *bs = (BatchState *) node;

	FinbertMemoReset(bs->memo);
	EndProgress(bs);
	ExecEndNode(outerPlanState(node));
}

static void
ReScanBatch(CustomScanState *node)
{
	BatchState *bs = (BatchState *) node;
	PlanState  *child = outerPlanState(node);

	FinbertMemoReset(bs->memo);
	bs->nrows = 0;
	bs->next = 0;
	bs->next_size = BATCH_FIRST_ROWS;
	bs->child_done = false;
	if (child->chgParam == NULL)
		ExecReScan(child);
}

static void
ExplainBatch(CustomScanState *node, List *ancestors, ExplainState *es)
{
	BatchState *bs = (BatchState *) node;
	CustomScan *cs = (CustomScan *) node->ss.ps.plan;
	List	   *context;
	StringInfoData calls;
	ListCell   *lc;

	context = set_deparse_context_plan(es->deparse_cxt, &cs->scan.plan, ancestors);
	initStringInfo(&calls);
	foreach(lc, cs->custom_exprs)
	{
		if (calls.len > 0)
			appendStringInfoString(&calls, ", ");
		appendStringInfoString(&calls, deparse_expression(lfirst(lc), context,
														  es->verbose, false));
	}
	ExplainPropertyText("Finbert Calls", calls.data, es);
	ExplainPropertyInteger("Batch Rows", NULL, Max(finbert_batch_rows, 1), es);
	if (es->analyze)
	{
		ExplainPropertyInteger("Batches", NULL, bs->batches, es);
		ExplainPropertyInteger("Requests", NULL, bs->requests, es);
		if (bs->failed > 0)
			ExplainPropertyInteger("Failed Requests", NULL, bs->failed, es);
	}
}

/* ------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------ */
static void
BatchXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			FinbertMemoAtAbort();
			FinbertProgressAtAbort();
			break;
		default:
			break;
	}
}

void
FinbertBatchInit(void)
{
	BatchScanMethods.CustomName = BATCH_NODE_NAME;
	BatchScanMethods.CreateCustomScanState = CreateBatchState;
	RegisterCustomScanMethods(&BatchScanMethods);

	BatchExecMethods.CustomName = BATCH_NODE_NAME;
	BatchExecMethods.BeginCustomScan = BeginBatch;
	BatchExecMethods.ExecCustomScan = ExecBatch;
	BatchExecMethods.EndCustomScan = EndBatch;
	BatchExecMethods.ReScanCustomScan = ReScanBatch;
	BatchExecMethods.ExplainCustomScan = ExplainBatch;

	CacheRegisterSyscacheCallback(PROCOID, InvalidateFuncCache, (Datum) 0);
	RegisterXactCallback(BatchXactCallback, NULL);

	prev_planner_hook = planner_hook;
	planner_hook = BatchPlanner;
}
