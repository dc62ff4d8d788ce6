/*
 * internal.h - libwref internals shared by the lib/ sources (never installed):
 * the common prelude (common.h) and the per-module headers in layer order.
 * A source may include just the module headers it uses instead.
 * "rule N" in lib/, include/ and tests/ is rule N of docs/design.md.
 *
 * Layers import only downward (docs/design.md, "Layers"; checked by
 * tests/build/check_imports.py on the symbols each source in lib/ uses):
 * alloc, lock, hooks, thread -> rcu -> executor (queue) -> object (header,
 * control block, death) -> ref -> fork, table -> valmap/keymap/set ->
 * method/finalize/signal -> runtime.
 */
#ifndef WREF_INTERNAL_H
#define WREF_INTERNAL_H

#include "common.h"

/* the modules' headers, in layer order (docs/design.md, "Layers") */
#include "alloc.h"
#include "lock.h"
#include "hooks.h"
#include "thread.h"
#include "rcu.h"
#include "executor.h"
#include "object.h"
#include "block.h"
#include "ref.h"
#include "fork.h"

#endif /* WREF_INTERNAL_H */
