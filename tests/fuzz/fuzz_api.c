/*
 * fuzz_api.c - libFuzzer harness: decodes bytes into a sequence of public
 * API calls (single thread, inline executor) and checks every result
 * against a simple reference model kept here (arrays + counts).
 *
 * Universe per input: up to MAXREC objects (each a record in the model),
 * held through 8 object slots; 8 weak-ref slots; 4 method slots; 4
 * finalizer slots; 2 signals.  Objects may hold a strong ref to an older
 * object (cascading deaths).  In inline mode, destroy, death callbacks and
 * finalizers all run before the releasing call returns, so after every
 * operation the model knows exactly what must have happened: which objects
 * are dead (destroy ran once), which callbacks and finalizers ran (once),
 * what each get / call / emit returns and in which order subscribers were
 * called, and how many library objects are alive (wref_stats).
 *
 * Built two ways: with clang -fsanitize=fuzzer for `make fuzz`, and with
 * the ordinary compiler plus replay.c, which replays tests/fuzz/corpus in
 * `make check`.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_FAIL(...)                                                       \
	do {                                                               \
		fprintf(stderr, "fuzz_api: model mismatch at %s:%d (op %d): ",\
			__FILE__, __LINE__, cur_op);                       \
		fprintf(stderr, __VA_ARGS__);                              \
		fputc('\n', stderr);                                       \
		abort();                                                   \
	} while (0)
#define FZ_CHECK(c)                                                        \
	do {                                                               \
		if (!(c))                                                  \
			FZ_FAIL("%s", #c);                                 \
	} while (0)

static int cur_op;

/* ---- model ---------------------------------------------------------------- */

#define MAXREC 64
#define NOBJ 8
#define NREF 8
#define NMETH 4
#define NFIN 4
#define NSIG 2
#define MAXSUB 32

struct fobj {
	int rec; /* model record index */
	int child; /* record it holds a strong ref to, or -1 */
};

struct orec {
	struct fobj *p; /* the object (valid while alive) */
	int count;      /* strong refs the model knows of */
	bool alive;
	int destroyed;  /* actual destroy runs */
	int shared;     /* ref record of the live shared ref, or -1 */
	int child;
};

struct rrec {
	wref_ref *h;
	int target;   /* object record */
	bool cb;
	int count;    /* harness-held strong refs on the handle */
	int fired;    /* actual callback runs */
	int want_fired;
};

struct frec {
	wref_finalizer *h;
	int target;
	bool held;    /* the harness holds the handle */
	bool armed;   /* model */
	int runs;     /* actual */
	int want_runs;
};

struct sub {
	int obj;      /* record */
	int fn;       /* 0 or 1 */
};
struct srec {
	wref_signal *h;
	bool alive;
	int nsub;
	struct sub subs[MAXSUB]; /* in connection order */
};

static struct orec orecs[MAXREC];
static int norec;
static struct rrec rrecs[MAXREC];
static int nrrec;
static struct frec frecs[MAXREC];
static int nfrec;
static int objs[NOBJ];   /* record or -1 */
static int refs[NREF];   /* rrec or -1 */
static struct {
	wref_method *h;
	int target;
	int fn;
} meths[NMETH];
static int fins[NFIN];   /* frec or -1 */
static struct srec sigs[NSIG];
static uint64_t live_base;

/* containers: one valmap (keys 0..NKEY-1: byte strings of that length),
 * one keymap, one set; entries refer to object records (-1 = none) */
#define NKEY 8
static const char keybytes[NKEY] = "kkkkkkk";
static struct {
	wref_valmap *h;
	bool once;
	int val[NKEY];
} vmap;
static struct {
	wref_keymap *h;
	int val[MAXREC]; /* key record -> value record */
} kmap;
static struct {
	wref_set *h;
	bool mem[MAXREC];
} wset;

/* ---- the object type ------------------------------------------------------------ */

static void fobj_destroy(void *p)
{
	struct fobj *o = p;
	orecs[o->rec].destroyed++;
	if (o->child >= 0)
		wref_release(orecs[o->child].p);
}
static const wref_type fobj_type = { .name = "fobj",
				     .destroy = fobj_destroy };

/* ---- model transitions ------------------------------------------------------------- */

static void model_kill(int x);

static void model_dec(int x)
{
	FZ_CHECK(orecs[x].count > 0);
	if (--orecs[x].count == 0)
		model_kill(x);
}

static void model_kill(int x)
{
	struct orec *o = &orecs[x];
	o->alive = false;
	for (int i = 0; i < nrrec; i++)
		if (rrecs[i].target == x && rrecs[i].cb && rrecs[i].count > 0)
			rrecs[i].want_fired = 1;
	for (int i = 0; i < nfrec; i++)
		if (frecs[i].target == x && frecs[i].armed) {
			frecs[i].armed = false;
			frecs[i].want_runs = 1;
		}
	for (int s = 0; s < NSIG; s++) {
		struct srec *g = &sigs[s];
		int k = 0;
		for (int i = 0; i < g->nsub; i++)
			if (g->subs[i].obj != x)
				g->subs[k++] = g->subs[i];
		g->nsub = k;
	}
	for (int k = 0; k < NKEY; k++)
		if (vmap.val[k] == x)
			vmap.val[k] = -1;
	wset.mem[x] = false;
	int v = kmap.val[x];
	kmap.val[x] = -1;
	if (o->child >= 0)
		model_dec(o->child);
	if (v >= 0)
		model_dec(v); /* the keymap's ref to the value */
}

/* library objects the model says are alive */
static uint64_t model_live(void)
{
	uint64_t n = 0;
	for (int i = 0; i < norec; i++)
		n += orecs[i].alive;
	for (int i = 0; i < nrrec; i++)
		n += rrecs[i].count > 0;
	for (int i = 0; i < nfrec; i++)
		n += frecs[i].held || frecs[i].armed;
	for (int i = 0; i < NMETH; i++)
		n += meths[i].h != NULL;
	for (int i = 0; i < NSIG; i++)
		n += sigs[i].alive;
	n += (vmap.h != NULL) + (kmap.h != NULL) + (wset.h != NULL);
	return n;
}

/* after every operation: what must have happened has happened */
static void check_all(void)
{
	for (int i = 0; i < norec; i++) {
		struct orec *o = &orecs[i];
		FZ_CHECK(o->destroyed == (o->alive ? 0 : 1));
		if (o->alive)
			FZ_CHECK(wref_strong_count(o->p) == (size_t)o->count);
	}
	for (int i = 0; i < nrrec; i++)
		if (rrecs[i].fired != rrecs[i].want_fired)
			FZ_FAIL("ref %d: callback ran %d times, want %d", i,
				rrecs[i].fired, rrecs[i].want_fired);
	for (int i = 0; i < nfrec; i++)
		if (frecs[i].runs != frecs[i].want_runs)
			FZ_FAIL("finalizer %d ran %d times, want %d", i,
				frecs[i].runs, frecs[i].want_runs);
	struct wref_stats s;
	wref_stats(&s);
	if (s.objects_live - live_base != model_live())
		FZ_FAIL("objects_live %llu, model %llu",
			(unsigned long long)(s.objects_live - live_base),
			(unsigned long long)model_live());
}

/* ---- callbacks ------------------------------------------------------------------------ */

static void on_death(wref_ref *r, void *arg)
{
	int i = (int)(intptr_t)arg;
	FZ_CHECK(i >= 0 && i < nrrec && rrecs[i].h == r);
	FZ_CHECK(wref_ref_get(r) == NULL);
	FZ_CHECK(!wref_ref_alive(r));
	FZ_CHECK(wref_flush() == -EDEADLK);
	rrecs[i].fired++;
}

static void fin_fn(void *arg)
{
	int i = (int)(intptr_t)arg;
	FZ_CHECK(i >= 0 && i < nfrec);
	frecs[i].runs++;
}

static int meth_calls[2];
static void *meth_last;
static void meth_fn0(void *obj, void *arg)
{
	FZ_CHECK(arg == &meth_last);
	meth_last = obj;
	meth_calls[0]++;
}
static void meth_fn1(void *obj, void *arg)
{
	FZ_CHECK(arg == &meth_last);
	meth_last = obj;
	meth_calls[1]++;
}
static wref_method_fn const meth_fns[2] = { meth_fn0, meth_fn1 };

/* emit log: (object, fn) in call order */
static struct sub emitted[MAXSUB * 2];
static int nemitted;
static int emit_arg;
static void sub_log(void *obj, void *arg, int fn)
{
	FZ_CHECK(arg == &emit_arg);
	FZ_CHECK(nemitted < MAXSUB * 2);
	const struct fobj *o = obj;
	FZ_CHECK(orecs[o->rec].alive && orecs[o->rec].p == o);
	emitted[nemitted++] = (struct sub){ o->rec, fn };
}
static void sub_fn0(void *obj, void *arg)
{
	sub_log(obj, arg, 0);
}
static void sub_fn1(void *obj, void *arg)
{
	sub_log(obj, arg, 1);
}
static wref_method_fn const sub_fns[2] = { sub_fn0, sub_fn1 };

static int call_fn(void *obj, void *arg)
{
	*(void **)arg = obj;
	return 3;
}

/* ---- operations -------------------------------------------------------------------------- */

static void obj_slot_set(int s, int rec)
{
	int old = objs[s];
	objs[s] = rec;
	if (old >= 0) {
		model_dec(old);
		wref_release(orecs[old].p);
	}
}

static void op_new(int s, int child_slot)
{
	if (norec == MAXREC)
		return;
	struct fobj *o = wref_new(&fobj_type, sizeof *o);
	FZ_CHECK(o);
	int x = norec++;
	orecs[x] = (struct orec){ .p = o, .count = 1, .alive = true,
				  .shared = -1, .child = -1 };
	o->rec = x;
	o->child = -1;
	int c = child_slot >= 0 ? objs[child_slot] : -1;
	if (c >= 0) {
		FZ_CHECK(wref_retain(orecs[c].p) == orecs[c].p);
		orecs[c].count++;
		o->child = c;
		orecs[x].child = c;
	}
	obj_slot_set(s, x);
}

static void op_copy(int a, int b)
{
	int x = objs[a];
	if (x < 0 || a == b)
		return;
	FZ_CHECK(wref_retain(orecs[x].p) == orecs[x].p);
	orecs[x].count++;
	obj_slot_set(b, x);
}

static void ref_slot_release(int s)
{
	int i = refs[s];
	if (i < 0)
		return;
	refs[s] = -1;
	struct rrec *r = &rrecs[i];
	if (--r->count == 0 && !r->cb && orecs[r->target].shared == i)
		orecs[r->target].shared = -1;
	wref_release(r->h);
}

static void op_ref_new(int a, int b, bool cb)
{
	int x = objs[a];
	if (x < 0)
		return;
	ref_slot_release(b);
	if (nrrec == MAXREC)
		return;
	int i = nrrec;
	wref_ref *h = wref_ref_new(orecs[x].p, cb ? on_death : NULL,
				   (void *)(intptr_t)i);
	FZ_CHECK(h);
	if (!cb && orecs[x].shared >= 0) {
		i = orecs[x].shared;
		FZ_CHECK(rrecs[i].h == h);
		rrecs[i].count++;
	} else {
		nrrec++;
		rrecs[i] = (struct rrec){ .h = h, .target = x, .cb = cb,
					  .count = 1 };
		if (!cb)
			orecs[x].shared = i;
	}
	refs[b] = i;
}

static void op_ref_get(int a)
{
	if (refs[a] < 0)
		return;
	struct rrec *r = &rrecs[refs[a]];
	void *g = wref_ref_get(r->h);
	FZ_CHECK(wref_ref_alive(r->h) == orecs[r->target].alive);
	if (orecs[r->target].alive) {
		FZ_CHECK(g == orecs[r->target].p);
		wref_release(g);
	} else {
		FZ_CHECK(g == NULL);
	}
	void *seen = NULL;
	int rc = wref_ref_call(r->h, call_fn, &seen);
	if (orecs[r->target].alive)
		FZ_CHECK(rc == 3 && seen == orecs[r->target].p);
	else
		FZ_CHECK(rc == -ENOENT && seen == NULL);
}

static void op_ref_cmp(int a, int b)
{
	if (refs[a] < 0 || refs[b] < 0)
		return;
	struct rrec *x = &rrecs[refs[a]], *y = &rrecs[refs[b]];
	FZ_CHECK(wref_ref_equal(x->h, y->h) == (x->target == y->target));
	if (x->target == y->target)
		FZ_CHECK(wref_ref_hash(x->h) == wref_ref_hash(y->h));
}

static void op_weak_count(int a, int cap)
{
	int x = objs[a];
	if (x < 0)
		return;
	size_t want = 0;
	for (int i = 0; i < nrrec; i++)
		want += rrecs[i].target == x && rrecs[i].count > 0;
	FZ_CHECK(wref_weak_count(orecs[x].p) == want);
	wref_ref *out[NREF + 1];
	cap %= NREF + 1;
	size_t n = wref_weak_refs(orecs[x].p, out, (size_t)cap);
	FZ_CHECK(n == want);
	for (size_t k = 0; k < n && k < (size_t)cap; k++) {
		bool found = false;
		for (int i = 0; i < nrrec; i++)
			found |= rrecs[i].h == out[k] && rrecs[i].count > 0 &&
				 rrecs[i].target == x;
		FZ_CHECK(found);
		for (size_t j = 0; j < k; j++)
			FZ_CHECK(out[j] != out[k]);
		wref_release(out[k]);
	}
}

static void op_method(int a, int b, int fn, int what)
{
	if (what == 0) { /* new */
		wref_release(meths[b].h);
		meths[b].h = NULL;
		int x = objs[a];
		if (x < 0)
			return;
		meths[b].h = wref_method_new(orecs[x].p, meth_fns[fn]);
		FZ_CHECK(meths[b].h);
		meths[b].target = x;
		meths[b].fn = fn;
	} else if (what == 1) { /* call */
		if (!meths[b].h)
			return;
		int c0 = meth_calls[meths[b].fn];
		meth_last = NULL;
		int rc = wref_method_call(meths[b].h, &meth_last);
		if (orecs[meths[b].target].alive) {
			FZ_CHECK(rc == 0);
			FZ_CHECK(meth_calls[meths[b].fn] == c0 + 1);
			FZ_CHECK(meth_last == orecs[meths[b].target].p);
		} else {
			FZ_CHECK(rc == -ENOENT);
			FZ_CHECK(meth_calls[meths[b].fn] == c0);
		}
	} else { /* release */
		wref_release(meths[b].h);
		meths[b].h = NULL;
	}
}

static void fin_slot_release(int s)
{
	int i = fins[s];
	if (i < 0)
		return;
	fins[s] = -1;
	frecs[i].held = false;
	wref_release(frecs[i].h);
}

static void op_fin(int a, int b, int what)
{
	int i = fins[b];
	struct frec *f = i >= 0 ? &frecs[i] : NULL;
	void *arg = NULL;
	switch (what) {
	case 0: { /* new */
		fin_slot_release(b);
		int x = objs[a];
		if (x < 0 || nfrec == MAXREC)
			return;
		i = nfrec++;
		frecs[i] = (struct frec){ .target = x, .held = true,
					  .armed = true };
		frecs[i].h = wref_finalize(orecs[x].p, fin_fn,
					   (void *)(intptr_t)i,
					   a & 1 ? WREF_FIN_ATEXIT : 0);
		FZ_CHECK(frecs[i].h);
		fins[b] = i;
		return;
	}
	case 1: /* call */
		if (!f)
			return;
		FZ_CHECK(wref_finalizer_call(f->h) == f->armed);
		if (f->armed) {
			f->armed = false;
			f->want_runs = 1;
		}
		return;
	case 2: /* detach */
		if (!f)
			return;
		FZ_CHECK(wref_finalizer_detach(f->h, &arg) == f->armed);
		if (f->armed) {
			FZ_CHECK(arg == (void *)(intptr_t)i);
			f->armed = false;
		}
		return;
	case 3: /* peek / alive / atexit */
		if (!f)
			return;
		FZ_CHECK(wref_finalizer_alive(f->h) == f->armed);
		FZ_CHECK(wref_finalizer_peek(f->h, &arg) == f->armed);
		if (f->armed)
			FZ_CHECK(arg == (void *)(intptr_t)i);
		wref_finalizer_set_atexit(f->h, a & 1);
		return;
	default:
		fin_slot_release(b);
	}
}

static void sig_release(int s)
{
	if (!sigs[s].alive)
		return;
	sigs[s].alive = false;
	sigs[s].nsub = 0;
	wref_release(sigs[s].h);
	sigs[s].h = NULL;
}

static void op_sig(int s, int a, int fn, int what)
{
	struct srec *g = &sigs[s];
	int x = objs[a];
	switch (what) {
	case 0: /* new */
		sig_release(s);
		g->h = wref_signal_new();
		FZ_CHECK(g->h);
		g->alive = true;
		g->nsub = 0;
		return;
	case 1: { /* connect */
		if (!g->alive || x < 0)
			return;
		int rc = wref_signal_connect(g->h, orecs[x].p, sub_fns[fn]);
		bool dup = false;
		for (int i = 0; i < g->nsub; i++)
			dup |= g->subs[i].obj == x && g->subs[i].fn == fn;
		if (dup) {
			FZ_CHECK(rc == -EEXIST);
		} else if (g->nsub == MAXSUB) {
			FZ_CHECK(rc == 0);
			FZ_CHECK(wref_signal_disconnect(g->h, orecs[x].p,
							sub_fns[fn]) == 0);
		} else {
			FZ_CHECK(rc == 0);
			g->subs[g->nsub++] = (struct sub){ x, fn };
		}
		return;
	}
	case 2: { /* disconnect */
		if (!g->alive || x < 0)
			return;
		int rc = wref_signal_disconnect(g->h, orecs[x].p, sub_fns[fn]);
		int k = 0, found = 0;
		for (int i = 0; i < g->nsub; i++) {
			if (g->subs[i].obj == x && g->subs[i].fn == fn)
				found = 1;
			else
				g->subs[k++] = g->subs[i];
		}
		g->nsub = k;
		FZ_CHECK(rc == (found ? 0 : -ENOENT));
		return;
	}
	case 3: { /* emit + len */
		if (!g->alive)
			return;
		FZ_CHECK(wref_signal_len(g->h) == (size_t)g->nsub);
		nemitted = 0;
		size_t n = wref_signal_emit(g->h, &emit_arg);
		FZ_CHECK(n == (size_t)g->nsub && nemitted == g->nsub);
		for (int i = 0; i < g->nsub; i++)
			FZ_CHECK(emitted[i].obj == g->subs[i].obj &&
				 emitted[i].fn == g->subs[i].fn);
		return;
	}
	default:
		sig_release(s);
	}
}


/* ---- containers ------------------------------------------------------------------------ */

static int make_fail;
static int make_calls;
static void *make_fn(const void *key, size_t len, void *arg)
{
	(void)arg;
	make_calls++;
	FZ_CHECK(len < NKEY && (len == 0 || memcmp(key, keybytes, len) == 0));
	if (make_fail) {
		errno = EIO;
		return NULL;
	}
	if (norec == MAXREC) {
		errno = ENOSPC;
		return NULL;
	}
	struct fobj *o = wref_new(&fobj_type, sizeof *o);
	FZ_CHECK(o);
	int x = norec++;
	orecs[x] = (struct orec){ .p = o, .count = 1, .alive = true,
				  .shared = -1, .child = -1 };
	o->rec = x;
	o->child = -1;
	return o;
}

static int vm_seen[NKEY];
static int vm_walk(const void *key, size_t len, void *obj, void *arg)
{
	(void)arg;
	FZ_CHECK(len < NKEY && (len == 0 || memcmp(key, keybytes, len) == 0));
	const struct fobj *o = obj;
	FZ_CHECK(vmap.val[len] == o->rec && orecs[o->rec].alive);
	vm_seen[len]++;
	return 0;
}

static void vm_release(void)
{
	if (!vmap.h)
		return;
	wref_release(vmap.h);
	vmap.h = NULL;
	for (int k = 0; k < NKEY; k++)
		vmap.val[k] = -1;
}

static void op_vm(int what, int k, int a, int c)
{
	if (what == 0) {
		vm_release();
		wref_map_options opt = { .flags = c & 1 ?
					 WREF_MAP_CREATE_ONCE : 0,
					 .initial_size = (size_t)k };
		vmap.h = wref_valmap_new(&opt);
		FZ_CHECK(vmap.h);
		vmap.once = c & 1;
		return;
	}
	if (!vmap.h)
		return;
	wref_valmap *m = vmap.h;
	int x = objs[a], cur = vmap.val[k];
	void *g;
	switch (what) {
	case 1: /* set */
		if (x < 0)
			return;
		FZ_CHECK(wref_valmap_set(m, keybytes, k, orecs[x].p) == 0);
		vmap.val[k] = x;
		return;
	case 2: /* get */
		errno = 0;
		g = wref_valmap_get(m, keybytes, k);
		if (cur >= 0) {
			FZ_CHECK(g == orecs[cur].p);
			wref_release(g);
		} else {
			FZ_CHECK(g == NULL && errno == ENOENT);
		}
		return;
	case 3: { /* get_or_create into object slot a */
		int calls = make_calls;
		make_fail = c & 1;
		errno = 0;
		g = wref_valmap_get_or_create(m, keybytes, k, make_fn, NULL);
		make_fail = 0;
		if (cur >= 0) {
			FZ_CHECK(g == orecs[cur].p && make_calls == calls);
		} else if (!g) {
			FZ_CHECK(make_calls == calls + 1);
			FZ_CHECK(errno == ((c & 1) ? EIO : ENOSPC));
			return;
		} else {
			FZ_CHECK(make_calls == calls + 1);
			cur = ((struct fobj *)g)->rec;
			FZ_CHECK(cur == norec - 1);
			orecs[cur].count = 0; /* counted below */
			vmap.val[k] = cur;
		}
		orecs[cur].count++;
		obj_slot_set(a, cur);
		return;
	}
	case 4: /* pop */
		errno = 0;
		g = wref_valmap_pop(m, keybytes, k);
		if (cur >= 0) {
			FZ_CHECK(g == orecs[cur].p);
			vmap.val[k] = -1;
			wref_release(g);
		} else {
			FZ_CHECK(g == NULL && errno == ENOENT);
		}
		return;
	case 5: /* del */
		FZ_CHECK(wref_valmap_del(m, keybytes, k) ==
			 (cur >= 0 ? 0 : -ENOENT));
		vmap.val[k] = -1;
		return;
	case 6: { /* len + foreach */
		size_t want = 0;
		for (int i = 0; i < NKEY; i++)
			want += vmap.val[i] >= 0;
		FZ_CHECK(wref_valmap_len(m) == want);
		memset(vm_seen, 0, sizeof vm_seen);
		FZ_CHECK(wref_valmap_foreach(m, vm_walk, NULL) == 0);
		for (int i = 0; i < NKEY; i++)
			FZ_CHECK(vm_seen[i] == (vmap.val[i] >= 0));
		return;
	}
	case 7: /* clear */
		wref_valmap_clear(m);
		for (int i = 0; i < NKEY; i++)
			vmap.val[i] = -1;
		FZ_CHECK(wref_valmap_len(m) == 0);
		return;
	default:
		vm_release();
	}
}

static void km_release(void)
{
	if (!kmap.h)
		return;
	wref_keymap *m = kmap.h;
	kmap.h = NULL;
	wref_release(m);
	/* the values it held are released (inline: before the release
	 * returned) */
	for (int i = 0; i < norec; i++) {
		int v = kmap.val[i];
		kmap.val[i] = -1;
		if (v >= 0)
			model_dec(v);
	}
}

static int km_seen[MAXREC];
static int km_walk(void *key, void *value, void *arg)
{
	(void)arg;
	const struct fobj *k = key, *v = value;
	FZ_CHECK(orecs[k->rec].alive && orecs[k->rec].p == k);
	FZ_CHECK(kmap.val[k->rec] == v->rec && orecs[v->rec].p == v);
	km_seen[k->rec]++;
	return 0;
}

static void op_km(int what, int a, int b)
{
	if (what == 0) {
		km_release();
		kmap.h = wref_keymap_new(NULL);
		FZ_CHECK(kmap.h);
		return;
	}
	if (!kmap.h)
		return;
	wref_keymap *m = kmap.h;
	int x = objs[a], y = objs[b];
	void *g;
	switch (what) {
	case 1: /* set */
		if (x < 0 || y < 0)
			return;
		FZ_CHECK(wref_keymap_set(m, orecs[x].p, orecs[y].p) == 0);
		orecs[y].count++;
		if (kmap.val[x] >= 0) {
			int old = kmap.val[x];
			kmap.val[x] = y;
			model_dec(old);
		} else {
			kmap.val[x] = y;
		}
		return;
	case 2: /* get */
		if (x < 0)
			return;
		errno = 0;
		g = wref_keymap_get(m, orecs[x].p);
		if (kmap.val[x] >= 0) {
			FZ_CHECK(g == orecs[kmap.val[x]].p);
			wref_release(g);
		} else {
			FZ_CHECK(g == NULL && errno == ENOENT);
		}
		return;
	case 3: /* pop */
		if (x < 0)
			return;
		errno = 0;
		g = wref_keymap_pop(m, orecs[x].p);
		if (kmap.val[x] >= 0) {
			int v = kmap.val[x];
			FZ_CHECK(g == orecs[v].p);
			kmap.val[x] = -1;
			wref_release(g);
			model_dec(v);
		} else {
			FZ_CHECK(g == NULL && errno == ENOENT);
		}
		return;
	case 4: /* del */
		if (x < 0)
			return;
		if (kmap.val[x] >= 0) {
			int v = kmap.val[x];
			kmap.val[x] = -1;
			FZ_CHECK(wref_keymap_del(m, orecs[x].p) == 0);
			model_dec(v);
		} else {
			FZ_CHECK(wref_keymap_del(m, orecs[x].p) == -ENOENT);
		}
		return;
	case 5: { /* len + foreach */
		size_t want = 0;
		for (int i = 0; i < norec; i++)
			want += kmap.val[i] >= 0;
		FZ_CHECK(wref_keymap_len(m) == want);
		memset(km_seen, 0, sizeof km_seen);
		FZ_CHECK(wref_keymap_foreach(m, km_walk, NULL) == 0);
		for (int i = 0; i < norec; i++)
			FZ_CHECK(km_seen[i] == (kmap.val[i] >= 0));
		return;
	}
	default:
		km_release();
	}
}

static int set_seen[MAXREC];
static int set_walk(void *obj, void *arg)
{
	(void)arg;
	const struct fobj *o = obj;
	FZ_CHECK(orecs[o->rec].alive && wset.mem[o->rec]);
	set_seen[o->rec]++;
	return 0;
}

static void set_release(void)
{
	if (!wset.h)
		return;
	wref_release(wset.h);
	wset.h = NULL;
	memset(wset.mem, 0, sizeof wset.mem);
}

static void op_set(int what, int a)
{
	if (what == 0) {
		set_release();
		wset.h = wref_set_new(NULL);
		FZ_CHECK(wset.h);
		return;
	}
	if (!wset.h)
		return;
	wref_set *s = wset.h;
	int x = objs[a];
	switch (what) {
	case 1: /* add */
		if (x < 0)
			return;
		FZ_CHECK(wref_set_add(s, orecs[x].p) ==
			 (wset.mem[x] ? -EEXIST : 0));
		wset.mem[x] = true;
		return;
	case 2: /* discard */
		if (x < 0)
			return;
		FZ_CHECK(wref_set_discard(s, orecs[x].p) ==
			 (wset.mem[x] ? 0 : -ENOENT));
		wset.mem[x] = false;
		return;
	case 3: { /* contains, len, foreach */
		if (x >= 0)
			FZ_CHECK(wref_set_contains(s, orecs[x].p) ==
				 wset.mem[x]);
		size_t want = 0;
		for (int i = 0; i < norec; i++)
			want += wset.mem[i];
		FZ_CHECK(wref_set_len(s) == want);
		memset(set_seen, 0, sizeof set_seen);
		FZ_CHECK(wref_set_foreach(s, set_walk, NULL) == 0);
		for (int i = 0; i < norec; i++)
			FZ_CHECK(set_seen[i] == wset.mem[i]);
		return;
	}
	default:
		set_release();
	}
}

/* ---- driver ---------------------------------------------------------------------------- */

static void reset_model(void)
{
	norec = nrrec = nfrec = 0;
	for (int i = 0; i < NOBJ; i++)
		objs[i] = -1;
	for (int i = 0; i < NREF; i++)
		refs[i] = -1;
	for (int i = 0; i < NFIN; i++)
		fins[i] = -1;
	memset(meths, 0, sizeof meths);
	memset(sigs, 0, sizeof sigs);
	memset(&vmap, 0, sizeof vmap);
	memset(&kmap, 0, sizeof kmap);
	memset(&wset, 0, sizeof wset);
	for (int i = 0; i < NKEY; i++)
		vmap.val[i] = -1;
	for (int i = 0; i < MAXREC; i++)
		kmap.val[i] = -1;
}

static void release_everything(void)
{
	for (int i = 0; i < NREF; i++)
		ref_slot_release(i);
	for (int i = 0; i < NMETH; i++)
		op_method(0, i, 0, 2);
	for (int i = 0; i < NFIN; i++)
		fin_slot_release(i);
	for (int i = 0; i < NSIG; i++)
		sig_release(i);
	vm_release();
	km_release();
	set_release();
	for (int i = 0; i < NOBJ; i++)
		obj_slot_set(i, -1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	wref_config c = { .exec_mode = WREF_EXEC_INLINE };
	if (wref_init(&c) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool inited;
	if (!inited) {
		LLVMFuzzerInitialize(NULL, NULL);
		inited = true;
	}
	struct wref_stats s0;
	wref_stats(&s0);
	live_base = s0.objects_live;
	reset_model();
	cur_op = 0;
	for (size_t p = 0; p + 2 <= size; p += 2, cur_op++) {
		unsigned op = data[p] % 40, v = data[p + 1];
		int a = v & 7, b = (v >> 3) & 7, c = v >> 6;
		switch (op) {
		case 0: op_new(a, -1); break;
		case 1: op_new(a, b); break;
		case 2: op_copy(a, b); break;
		case 3: obj_slot_set(a, -1); break;
		case 4: op_ref_new(a, b, false); break;
		case 5: op_ref_new(a, b, true); break;
		case 6: op_ref_get(a); break;
		case 7: ref_slot_release(a); break;
		case 8: op_ref_cmp(a, b); break;
		case 9: op_weak_count(a, b); break;
		case 10: op_method(a, b & 3, c & 1, 0); break;
		case 11: op_method(a, b & 3, c & 1, 1); break;
		case 12: op_method(a, b & 3, c & 1, 2); break;
		case 13: op_fin(a, b & 3, 0); break;
		case 14: op_fin(a, b & 3, 1); break;
		case 15: op_fin(a, b & 3, 2); break;
		case 16: op_fin(a, b & 3, 3); break;
		case 17: op_fin(a, b & 3, 4); break;
		case 18: op_sig(c & 1, a, b & 1, 0); break;
		case 19: op_sig(c & 1, a, b & 1, 1); break;
		case 20: op_sig(c & 1, a, b & 1, 2); break;
		case 21: op_sig(c & 1, a, b & 1, 3); break;
		case 22: op_sig(c & 1, a, b & 1, 4); break;
		case 24: op_vm(0, b, a, c); break;
		case 25: op_vm(1, b, a, c); break;
		case 26: op_vm(2, b, a, c); break;
		case 27: op_vm(3, b, a, c); break;
		case 28: op_vm(4, b, a, c); break;
		case 29: op_vm(5, b, a, c); break;
		case 30: op_vm(6, b, a, c); break;
		case 31: op_vm(c == 3 ? 8 : 7, b, a, c); break;
		case 32: op_km(0, a, b); break;
		case 33: op_km(1, a, b); break;
		case 34: op_km(2 + c, a, b); break;
		case 35: op_km(c == 3 ? 6 : 5, a, b); break;
		case 36: op_set(c == 3 ? 4 : 0, a); break;
		case 37: op_set(1, a); break;
		case 38: op_set(2, a); break;
		case 39: op_set(3, a); break;
		default:
			FZ_CHECK(wref_flush() == 0);
			if (objs[a] >= 0)
				FZ_CHECK(wref_type_of(orecs[objs[a]].p) ==
					 &fobj_type);
			break;
		}
		check_all();
	}
	release_everything();
	check_all();
	for (int i = 0; i < norec; i++)
		FZ_CHECK(!orecs[i].alive);
	struct wref_stats s1;
	wref_stats(&s1);
	FZ_CHECK(s1.objects_live == s0.objects_live);
	return 0;
}
