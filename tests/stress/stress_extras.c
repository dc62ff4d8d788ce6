/*
 * stress_extras.c - races of the upper layer (run under make check-tsan):
 *  - signal emit vs connect / disconnect / subscriber death, from several
 *    threads: a subscriber is never called once its destroy began, len
 *    settles at 0, nothing leaks;
 *  - a signal's death vs its subscribers' deaths;
 *  - finalizer call / detach vs the object's death: exactly one outcome
 *    per finalizer, its function run at most once (counted);
 *  - WREF_FIN_ATEXIT finalizers vs wref_shutdown(): still once each.
 * Sizes scale with WREF_STRESS_SCALE.
 */
#include "core_test.h"

#define LIVE 0x11u
#define DEAD 0xddu

struct sub {
	_Atomic unsigned magic;
	_Atomic long calls;
};

static void sub_destroy(void *p)
{
	struct sub *s = p;
	atomic_store(&s->magic, DEAD);
}
static const wref_type sub_type = { .name = "sub", .destroy = sub_destroy };

static _Atomic long total_calls;
static _Atomic int bad_calls;

static void on_event(void *p, void *arg)
{
	struct sub *s = p;
	(void)arg;
	if (atomic_load(&s->magic) != LIVE)
		bad_calls++;
	s->calls++;
	total_calls++;
}

static void on_event2(void *p, void *arg)
{
	on_event(p, arg);
}

static struct sub *mk_sub(void)
{
	struct sub *s = wref_new(&sub_type, sizeof *s);
	ck_assert_ptr_nonnull(s);
	atomic_init(&s->magic, LIVE);
	return s;
}

/* ---- emit vs connect / disconnect / death -------------------------------- */

static wref_signal *bus;
static _Atomic bool stop;
static long rounds;

static void *emitter(void *unused)
{
	(void)unused;
	while (!atomic_load(&stop))
		wref_signal_emit(bus, NULL);
	return NULL;
}

static void *churner(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
	struct sub *mine[8] = { 0 };
	for (long i = 0; i < rounds; i++) {
		unsigned k = (unsigned)(ct_rand(&seed) % 8);
		switch (ct_rand(&seed) % 4) {
		case 0: /* new subscriber, one or two functions */
			if (mine[k])
				break;
			mine[k] = mk_sub();
			ck_assert_int_eq(wref_signal_connect(bus, mine[k],
							     on_event), 0);
			if (ct_rand(&seed) & 1)
				ck_assert_int_eq(wref_signal_connect(bus,
						mine[k], on_event2), 0);
			break;
		case 1: /* dies without unsubscribing */
			wref_release(mine[k]);
			mine[k] = NULL;
			break;
		case 2: /* disconnect, maybe reconnect */
			if (!mine[k])
				break;
			if (wref_signal_disconnect(bus, mine[k],
						   on_event) == 0 &&
			    (ct_rand(&seed) & 1))
				ck_assert_int_eq(wref_signal_connect(bus,
						mine[k], on_event), 0);
			break;
		default: /* emit from here too */
			wref_signal_emit(bus, NULL);
			break;
		}
		if (ct_rand(&seed) % 64 == 0)
			ct_spin((unsigned)(ct_rand(&seed) % 2000));
	}
	for (unsigned k = 0; k < 8; k++)
		wref_release(mine[k]);
	return NULL;
}

START_TEST(test_emit_vs_churn)
{
	struct wref_stats start = ct_stats();
	enum { EMITTERS = 2, CHURNERS = 3 };
	pthread_t e[EMITTERS], c[CHURNERS];
	rounds = 4000 * ct_scale();
	bus = wref_signal_new();
	atomic_store(&stop, false);
	for (int i = 0; i < EMITTERS; i++)
		pthread_create(&e[i], NULL, emitter, NULL);
	for (long i = 0; i < CHURNERS; i++)
		pthread_create(&c[i], NULL, churner, (void *)(i + 1));
	for (int i = 0; i < CHURNERS; i++)
		pthread_join(c[i], NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < EMITTERS; i++)
		pthread_join(e[i], NULL);
	ck_assert_int_eq(bad_calls, 0);
	ck_assert_uint_eq(wref_signal_len(bus), 0);
	ck_assert_uint_eq(wref_signal_emit(bus, NULL), 0);
	printf("emit vs churn: %ld subscriber calls\n", (long)total_calls);
	wref_release(bus);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- signal death vs subscriber deaths ------------------------------------ */

enum { NSUB = 32 };
static pthread_barrier_t bar;
static wref_signal *victim;
static struct sub *subs[NSUB];

static void *kill_subs(void *unused)
{
	(void)unused;
	for (long r = 0; r < rounds; r++) {
		pthread_barrier_wait(&bar);
		for (int i = 0; i < NSUB; i++)
			wref_release(subs[i]);
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

START_TEST(test_signal_death_vs_subscribers)
{
	struct wref_stats start = ct_stats();
	pthread_t t;
	rounds = 100 * ct_scale();
	pthread_barrier_init(&bar, NULL, 2);
	pthread_create(&t, NULL, kill_subs, NULL);
	for (long r = 0; r < rounds; r++) {
		victim = wref_signal_new();
		for (int i = 0; i < NSUB; i++) {
			subs[i] = mk_sub();
			ck_assert_int_eq(wref_signal_connect(victim, subs[i],
							     on_event), 0);
		}
		pthread_barrier_wait(&bar);
		/* emit a little, then die, while the subscribers die */
		wref_signal_emit(victim, NULL);
		wref_release(victim);
		pthread_barrier_wait(&bar);
	}
	pthread_join(t, NULL);
	pthread_barrier_destroy(&bar);
	ck_assert_int_eq(bad_calls, 0);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- finalizer call / detach vs death --------------------------------------- */

enum { BATCH = 256 };
struct fin_slot {
	struct sub *obj;
	wref_finalizer *f;
	_Atomic int ran;
	_Atomic int called, detached; /* the racers' wins */
};
static struct fin_slot slots[BATCH];

static void fin_fn(void *arg)
{
	struct fin_slot *s = arg;
	s->ran++;
}

static void *fin_racer(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	for (long r = 0; r < rounds; r++) {
		pthread_barrier_wait(&bar);
		for (int i = 0; i < BATCH; i++) {
			struct fin_slot *s = &slots[i];
			if (ct_rand(&seed) % 4 == 0) {
				void *a = NULL;
				if (wref_finalizer_detach(s->f, &a)) {
					ck_assert_ptr_eq(a, s);
					s->detached++;
				}
			} else if (wref_finalizer_call(s->f)) {
				s->called++;
			}
		}
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

static void *fin_killer(void *unused)
{
	(void)unused;
	for (long r = 0; r < rounds; r++) {
		pthread_barrier_wait(&bar);
		for (int i = 0; i < BATCH; i++) {
			wref_release(slots[i].obj);
			slots[i].obj = NULL;
		}
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

START_TEST(test_finalizer_call_vs_death)
{
	struct wref_stats start = ct_stats();
	pthread_t t[3];
	long won_call = 0, won_death = 0, won_detach = 0;
	rounds = 30 * ct_scale();
	pthread_barrier_init(&bar, NULL, 4);
	pthread_create(&t[0], NULL, fin_racer, (void *)1);
	pthread_create(&t[1], NULL, fin_racer, (void *)2);
	pthread_create(&t[2], NULL, fin_killer, NULL);
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < BATCH; i++) {
			struct fin_slot *s = &slots[i];
			s->obj = mk_sub();
			s->f = wref_finalize(s->obj, fin_fn, s, 0);
			ck_assert_ptr_nonnull(s->f);
			atomic_store(&s->ran, 0);
			atomic_store(&s->called, 0);
			atomic_store(&s->detached, 0);
		}
		pthread_barrier_wait(&bar); /* go */
		pthread_barrier_wait(&bar); /* all done */
		ck_assert_int_eq(wref_flush(), 0); /* the death runs */
		for (int i = 0; i < BATCH; i++) {
			struct fin_slot *s = &slots[i];
			int ran = s->ran, called = s->called;
			int detached = s->detached;
			/* exactly one outcome, and fn at most once */
			ck_assert_int_eq(ran + detached, 1);
			ck_assert_int_le(called, ran);
			ck_assert(!wref_finalizer_alive(s->f));
			won_call += called;
			won_detach += detached;
			won_death += ran - called;
			wref_release(s->f);
		}
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	printf("finalizer races: call %ld, death %ld, detach %ld\n", won_call,
	       won_death, won_detach);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- at-exit finalizers vs wref_shutdown ------------------------------------ */

static void *shutdowner(void *unused)
{
	(void)unused;
	for (long r = 0; r < rounds; r++) {
		pthread_barrier_wait(&bar);
		wref_shutdown();
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

START_TEST(test_atexit_vs_shutdown)
{
	struct wref_stats start = ct_stats();
	pthread_t t[3];
	rounds = 10 * ct_scale();
	pthread_barrier_init(&bar, NULL, 4);
	pthread_create(&t[0], NULL, fin_racer, (void *)3);
	pthread_create(&t[1], NULL, fin_killer, NULL);
	pthread_create(&t[2], NULL, shutdowner, NULL);
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < BATCH; i++) {
			struct fin_slot *s = &slots[i];
			s->obj = mk_sub();
			s->f = wref_finalize(s->obj, fin_fn, s,
					     WREF_FIN_ATEXIT);
			atomic_store(&s->ran, 0);
			atomic_store(&s->called, 0);
			atomic_store(&s->detached, 0);
		}
		pthread_barrier_wait(&bar);
		pthread_barrier_wait(&bar);
		ck_assert_int_eq(wref_flush(), 0);
		for (int i = 0; i < BATCH; i++) {
			struct fin_slot *s = &slots[i];
			ck_assert_int_eq(s->ran + s->detached, 1);
			wref_release(s->f);
		}
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	ct_assert_no_leak(start);
}
END_TEST

static Suite *stress_suite(void)
{
	Suite *s = suite_create("stress_extras");
	TCase *tc = tcase_create("races");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_emit_vs_churn);
	tcase_add_test(tc, test_signal_death_vs_subscribers);
	tcase_add_test(tc, test_finalizer_call_vs_death);
	tcase_add_test(tc, test_atexit_vs_shutdown);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ct_run_suite(stress_suite());
}
