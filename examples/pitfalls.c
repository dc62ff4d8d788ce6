/*
 * pitfalls.c - the classic weak-reference mistakes, and the safe patterns.
 *
 * 1. Check-then-use.  wref_ref_alive() is a snapshot: the object may die
 *    right after it says "alive", and a raw pointer kept from earlier is
 *    then dangling.  The safe pattern is upgrade + use + release:
 *    wref_ref_get() returns a strong ref (or NULL), and the object cannot
 *    die while you hold it -- even if every other owner lets go meanwhile.
 * 2. Death callbacks are asynchronous: they run on the executor thread
 *    after the release returns; wref_flush() waits for them.
 * 3. Waiting for the executor from inside a callback would deadlock:
 *    wref_flush() refuses with -EDEADLK there.
 * 4. A finalizer (or callback) argument must not be the object itself.
 *
 * Two threads act out pitfall 1 in a fixed order (a tiny turn-taking
 * helper), so the output is the same on every run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include <wref.h>

struct account {
	long balance;
};

static void account_destroy(void *obj)
{
	printf("  (account destroyed)\n");
	(void)obj;
}

static const wref_type account_type = { .name = "account",
					.destroy = account_destroy };

/* turn-taking: thread @me waits until it is its turn */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn;
static void wait_turn(int me)
{
	pthread_mutex_lock(&mu);
	while (turn != me)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}
static void give_turn(int to)
{
	pthread_mutex_lock(&mu);
	turn = to;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static struct account *owner_ref; /* the owner thread's strong ref */

/* the owner: drops its (last) ref when told to */
static void *owner(void *unused)
{
	(void)unused;
	wait_turn(1);
	printf("  owner: releasing the account\n");
	wref_release(owner_ref);
	give_turn(0);
	return NULL;
}

/* a death callback: records what it saw; printing here would race with
 * the main thread's output */
struct seen {
	int ran;
	int flush_rc;
	bool upgraded;
};

static void on_death(wref_ref *ref, void *arg)
{
	struct seen *s = arg;
	s->upgraded = wref_ref_get(ref) != NULL; /* always NULL here */
	s->flush_rc = wref_flush();              /* 3: -EDEADLK */
	s->ran++;
}

int main(void)
{
	pthread_t t;

	printf("1a. WRONG: check, then use a raw pointer\n");
	owner_ref = wref_new(&account_type, sizeof *owner_ref);
	wref_ref *r = wref_ref_new(owner_ref, NULL, NULL);
	struct account *raw = owner_ref; /* borrowed, no ref of our own */
	pthread_create(&t, NULL, owner, NULL);
	if (wref_ref_alive(r)) {
		printf("  reader: alive says yes\n");
		give_turn(1); /* ...the owner runs between check and use */
		wait_turn(0);
		printf("  reader: using it now would touch freed memory "
		       "(alive: %s)\n", wref_ref_alive(r) ? "yes" : "no");
		(void)raw; /* so we do not */
	}
	pthread_join(t, NULL);
	wref_release(r);

	printf("1b. RIGHT: upgrade, use, release\n");
	owner_ref = wref_new(&account_type, sizeof *owner_ref);
	r = wref_ref_new(owner_ref, NULL, NULL);
	pthread_create(&t, NULL, owner, NULL);
	struct account *acc = wref_ref_get(r); /* a strong ref, or NULL */
	if (acc) {
		give_turn(1); /* the owner lets go meanwhile... */
		wait_turn(0);
		acc->balance += 100; /* ...but we still hold it: safe */
		printf("  reader: balance %ld, still valid\n", acc->balance);
		wref_release(acc); /* the last ref: destroy runs here */
	}
	printf("  reader: upgrade now gives %s\n",
	       wref_ref_get(r) ? "an object" : "NULL");
	pthread_join(t, NULL);
	wref_release(r);

	printf("2. callbacks run later, on the executor\n");
	struct seen seen = { 0 };
	acc = wref_new(&account_type, sizeof *acc);
	r = wref_ref_new(acc, on_death, &seen);
	wref_release(acc);
	/* here the callback may or may not have run yet: do not rely on it */
	wref_flush();
	printf("  after wref_flush: callback ran %d time(s), upgrade there "
	       "gave %s\n", seen.ran, seen.upgraded ? "an object" : "NULL");
	printf("3. wref_flush inside the callback: %s\n",
	       seen.flush_rc == -EDEADLK ? "-EDEADLK" : "?");
	wref_release(r);

	printf("4. finalizer arguments: pass what cleanup needs, a copy, "
	       "never the object (see tempfile.c)\n");
	return 0;
}
