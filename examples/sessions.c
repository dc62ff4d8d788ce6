/*
 * sessions.c - a registry of active sessions as a weak set
 * (Python: WeakSet).
 *
 * Connection handlers own their sessions; a registry only needs to know
 * which sessions exist, for monitoring.  Adding each session to a
 * wref_set keeps no session alive: when a handler drops its session, the
 * session leaves the set by itself -- no deregistration code to forget.
 *
 * A monitor thread counts and lists the active sessions (on request, so
 * the output is deterministic) while the main thread logs users in and
 * out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wref.h>

struct session {
	char user[16];
};

static const wref_type session_type = { .name = "session" };

static wref_set *active;

static struct session *login(const char *user)
{
	struct session *s = wref_new(&session_type, sizeof *s);
	snprintf(s->user, sizeof s->user, "%s", user);
	wref_set_add(active, s); /* registered, weakly */
	return s;
}

/* ---- the monitor thread ---------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int requests, answered; /* under mu */
static bool stopping;

struct names {
	char v[8][16];
	int n;
};

/* runs with the session pinned: it cannot die during the call */
static int collect(void *obj, void *arg)
{
	struct names *nm = arg;
	if (nm->n < 8)
		snprintf(nm->v[nm->n++], 16, "%s", ((struct session *)obj)->user);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void report(void)
{
	struct names nm = { .n = 0 };
	size_t len = wref_set_len(active);
	wref_set_foreach(active, collect, &nm);
	qsort(nm.v, (size_t)nm.n, sizeof nm.v[0], by_name); /* set order is
							      arbitrary */
	printf("  monitor: %zu active session(s):", len);
	for (int i = 0; i < nm.n; i++)
		printf(" %s", nm.v[i]);
	printf("\n");
}

static void *monitor(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (requests == answered && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (requests == answered)
			break;
		pthread_mutex_unlock(&mu);
		report();
		pthread_mutex_lock(&mu);
		answered++;
		pthread_cond_broadcast(&cv);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* ask the monitor for a report and wait for it */
static void ask_monitor(void)
{
	pthread_mutex_lock(&mu);
	int want = ++requests;
	pthread_cond_broadcast(&cv);
	while (answered < want)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

int main(void)
{
	pthread_t t;
	active = wref_set_new(NULL);
	pthread_create(&t, NULL, monitor, NULL);

	struct session *alice = login("alice");
	struct session *bob = login("bob");
	struct session *carol = login("carol");
	printf("three users logged in\n");
	ask_monitor();

	printf("adding alice again: %s\n",
	       wref_set_add(active, alice) == -EEXIST ? "already registered"
						       : "added?");

	printf("bob logs out (his handler drops the session)\n");
	wref_release(bob);
	ask_monitor();

	printf("carol's connection drops too\n");
	wref_release(carol);
	printf("is alice registered? %s\n",
	       wref_set_contains(active, alice) ? "yes" : "no");
	ask_monitor();

	wref_release(alice);
	ask_monitor();

	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	wref_release(active);
	return 0;
}
