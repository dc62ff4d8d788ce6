/*
 * conncache.c - a connection cache on a weak-value map
 * (Python: WeakValueDictionary, and the TTL "SmartCache" recipe).
 *
 * Threads ask the cache for a connection by its connection string.
 * wref_valmap_get_or_create() returns the live connection for that key or
 * makes one, atomically: all threads asking for the same string share one
 * connection (WREF_MAP_CREATE_ONCE: the factory runs once per key, the
 * others wait for it).  The cache holds connections weakly, so the last
 * user to release one closes it and the entry disappears by itself.
 *
 * The second cache keeps each connection open for retain_ms after its
 * last use (a strong retention tier), so a burst of short requests reuses
 * one connection instead of reconnecting each time.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <wref.h>

struct conn {
	char dsn[48];
	int id;
};

static atomic_int next_id = 1, opened, closed;

static void conn_destroy(void *obj)
{
	(void)obj;
	atomic_fetch_add(&closed, 1); /* a real one would close its socket */
}

static const wref_type conn_type = { .name = "conn",
				     .destroy = conn_destroy };

/* the factory: connect (called once per key with CREATE_ONCE) */
static void *connect_to(const void *key, size_t len, void *arg)
{
	(void)arg;
	struct conn *c = wref_new(&conn_type, sizeof *c);
	if (!c)
		return NULL;
	snprintf(c->dsn, sizeof c->dsn, "%.*s", (int)len, (const char *)key);
	c->id = atomic_fetch_add(&next_id, 1);
	atomic_fetch_add(&opened, 1);
	return c;
}

static struct conn *cache_get(wref_valmap *cache, const char *dsn)
{
	return wref_valmap_get_or_create(cache, dsn, strlen(dsn), connect_to,
					 NULL);
}

/* ---- many threads, one connection per key --------------------------------- */

enum { NTHREADS = 4 };
static const char *const dsns[2] = { "postgres://db1/orders",
				     "postgres://db1/users" };
static wref_valmap *cache;
static pthread_barrier_t all_hold;
static struct conn *got[NTHREADS][2];

static void *worker(void *arg)
{
	long i = (long)arg;
	for (int k = 0; k < 2; k++)
		got[i][k] = cache_get(cache, dsns[(k + i) % 2]);
	/* every worker holds both connections here */
	pthread_barrier_wait(&all_hold);
	pthread_barrier_wait(&all_hold); /* main has compared them */
	for (int k = 0; k < 2; k++)
		wref_release(got[i][k]);
	return NULL;
}

static void shared_connections(void)
{
	wref_map_options opt = { .flags = WREF_MAP_CREATE_ONCE };
	cache = wref_valmap_new(&opt);
	pthread_t t[NTHREADS];
	pthread_barrier_init(&all_hold, NULL, NTHREADS + 1);
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	pthread_barrier_wait(&all_hold);
	bool same = true;
	for (int i = 0; i < NTHREADS; i++)
		for (int k = 0; k < 2; k++)
			same &= got[i][k] == got[0][(k + i) % 2];
	printf("%d threads asked for 2 connection strings: %d connection(s) "
	       "opened, shared: %s\n", NTHREADS, opened, same ? "yes" : "no");
	printf("cache entries while in use: %zu\n", wref_valmap_len(cache));
	pthread_barrier_wait(&all_hold);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&all_hold);
	/* the last user of each connection closed it */
	printf("after the last users left: %d closed, cache entries: %zu\n",
	       closed, wref_valmap_len(cache));
	wref_release(cache);
}

/* ---- the TTL variant ------------------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void ttl_cache(void)
{
	wref_map_options opt = { .flags = WREF_MAP_CREATE_ONCE,
				 .retain_ms = 100 };
	wref_valmap *ttl = wref_valmap_new(&opt);
	int closed_before = closed;

	struct conn *c = cache_get(ttl, dsns[0]);
	int first = c->id;
	wref_release(c); /* the only user leaves... */
	printf("TTL cache: after the only user left: entries %zu, still "
	       "open: %s\n", wref_valmap_len(ttl),
	       closed == closed_before ? "yes" : "no");
	c = cache_get(ttl, dsns[0]); /* ...and the next request reuses it */
	printf("TTL cache: the next request reuses it: %s\n",
	       c->id == first ? "yes" : "no");
	wref_release(c);

	/* idle past the TTL: the tier lets go, and the connection closes */
	for (int waited = 0; closed == closed_before && waited < 5000;
	     waited += 10) {
		sleep_ms(10);
		wref_flush();
	}
	printf("TTL cache: idle past retain_ms: closed: %s, entries %zu\n",
	       closed > closed_before ? "yes" : "no", wref_valmap_len(ttl));
	wref_release(ttl);
}

int main(void)
{
	shared_connections();
	ttl_cache();
	return 0;
}
