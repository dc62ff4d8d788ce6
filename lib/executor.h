/*
 * executor.h - the executor of executor.c (work items, inline mode, fork
 * steps). Internal, never installed; split from internal.h (issue 14 item
 * 4).
 */
#ifndef WREF_EXECUTOR_H
#define WREF_EXECUTOR_H

#include "common.h"

/* ---- executor.c -------------------------------------------------------- */
struct wref__work {
	struct cds_wfcq_node node;
	void (*run)(struct wref__work *w);
};
/* queue @w to run on the executor; true if it was queued inline on this
 * thread instead (inline mode, or no executor thread could be started),
 * where the caller must run it in a death context: callers use
 * wref__defer (object.h), which does.  Never under a lock. */
WREF_HIDDEN bool wref__exec_queue(struct wref__work *w);
/* the same for a chain linked through node.next (NULL-terminated), in its
 * order: one splice onto the executor's queue (a death's callbacks); true
 * if any of it was queued inline */
WREF_HIDDEN bool wref__exec_queue_chain(struct wref__work *first);
WREF_HIDDEN bool wref__in_callback(void);
/* a callback runs on this thread, or inline items wait on it for the
 * caller to return: wref_flush cannot wait (-EDEADLK) */
WREF_HIDDEN bool wref__exec_cannot_wait(void);
WREF_HIDDEN bool wref__exec_inline(void);
/* inline mode: run what this thread queued (called by wref__leave) */
WREF_HIDDEN void wref__inline_drain(void);
WREF_HIDDEN extern __thread struct wref__work *wref__tls_inl_head
	__attribute__((tls_model("initial-exec")));
static inline bool wref__inline_pending(void)
{
	return wref__tls_inl_head != NULL;
}
WREF_HIDDEN void wref__executor_atfork_prepare(void);
WREF_HIDDEN void wref__executor_atfork_parent(void);
WREF_HIDDEN void wref__executor_atfork_child(void);
WREF_HIDDEN void wref__executor_stop(void);
WREF_HIDDEN int wref__exec_set_mode(int mode);

#endif /* WREF_EXECUTOR_H */
