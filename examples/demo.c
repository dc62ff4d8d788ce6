/*
 * demo.c - libwref in one screen: an object, a shared weak ref, a weak ref
 * with a death callback on the executor, upgrade before and after death,
 * and a few threads racing upgrades against the last release.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <wref.h>

struct conn {
	char name[32];
	int fd;
};

static void conn_destroy(void *obj)
{
	struct conn *c = obj;
	printf("destroy: closing %s (fd %d)\n", c->name, c->fd);
}

static const wref_type conn_type = { .name = "conn", .destroy = conn_destroy };

static void on_death(wref_ref *ref, void *arg)
{
	/* runs on the executor thread; the referent is gone */
	printf("callback: %s died, upgrade now gives %s\n", (const char *)arg,
	       wref_ref_get(ref) ? "an object" : "NULL");
}

static void *reader(void *arg)
{
	wref_ref *ref = arg;
	long hits = 0;
	for (int i = 0; i < 100000; i++) {
		struct conn *c = wref_ref_get(ref); /* lock-free upgrade */
		if (!c)
			break;
		hits += c->fd == 7;
		wref_release(c);
	}
	return (void *)hits;
}

int main(void)
{
	struct conn *c = wref_new(&conn_type, sizeof *c);
	if (!c)
		return 1;
	strcpy(c->name, "db-primary");
	c->fd = 7;

	wref_ref *weak = wref_ref_new(c, NULL, NULL); /* shared */
	/* the callback's argument must outlive the object: a pointer into it
	 * (c->name) would be read after its memory was freed */
	static const char label[] = "db-primary";
	wref_ref *watch = wref_ref_new(c, on_death, (void *)label);
	printf("weak refs to %s: %zu\n", c->name, wref_weak_count(c));

	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, reader, weak);
	struct conn *again = wref_ref_get(weak);
	printf("upgrade while alive: %s\n", again ? again->name : "(dead)");
	wref_release(again);
	wref_release(c); /* the last strong ref: the object dies here */
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	/* the callback runs on the executor after destroy returned; wait for
	 * it, so the output below comes in a fixed order */
	wref_flush();
	printf("upgrade after death: %s\n",
	       wref_ref_get(weak) ? "an object" : "NULL");

	wref_release(weak);
	wref_release(watch);

	struct wref_stats st;
	wref_stats(&st);
	printf("live objects: %llu, callbacks run: %llu\n",
	       (unsigned long long)st.objects_live,
	       (unsigned long long)st.callbacks_run);
	return 0;
}
