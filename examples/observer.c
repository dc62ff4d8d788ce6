/*
 * observer.c - the observer pattern with weak subscribers.
 *
 * A model announces changes through a wref_signal.  Views subscribe with
 * wref_signal_connect(), which holds each view weakly: the model never
 * keeps a view alive, and a view that is released simply stops being
 * notified -- no unsubscribe call, no dangling pointer.  (Python: a
 * WeakSet of observers, or WeakMethod callbacks.)
 *
 * The updates come from a worker thread while the main thread owns the
 * views: emit pins each live view for the duration of its call.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <wref.h>

struct model {
	wref_signal *changed; /* fires with the model as argument */
	int value;
};

static void model_destroy(void *obj)
{
	struct model *m = obj;
	wref_release(m->changed);
}

static const wref_type model_type = { .name = "model",
				      .destroy = model_destroy };

struct view {
	char name[16];
	int updates;
};

static void view_destroy(void *obj)
{
	struct view *v = obj;
	printf("  %s closed after %d update(s)\n", v->name, v->updates);
}

static const wref_type view_type = { .name = "view",
				     .destroy = view_destroy };

static struct view *view_new(const char *name)
{
	struct view *v = wref_new(&view_type, sizeof *v);
	if (v)
		snprintf(v->name, sizeof v->name, "%s", name);
	return v;
}

/* subscriber: runs on the emitting thread with the view pinned */
static void view_refresh(void *obj, void *arg)
{
	struct view *v = obj;
	const struct model *m = arg;
	v->updates++;
	printf("  %s shows %d\n", v->name, m->value);
}

static void model_set(struct model *m, int value)
{
	m->value = value;
	size_t n = wref_signal_emit(m->changed, m);
	printf("  (set %d: %zu view(s) notified)\n", value, n);
}

/* the worker thread: a few updates to the shared model */
static void *worker(void *arg)
{
	struct model *m = arg;
	model_set(m, m->value + 1);
	return NULL;
}

static void update_from_worker(struct model *m)
{
	pthread_t t;
	pthread_create(&t, NULL, worker, m);
	pthread_join(t, NULL);
}

int main(void)
{
	struct model *m = wref_new(&model_type, sizeof *m);
	m->changed = wref_signal_new();

	struct view *table = view_new("table");
	struct view *chart = view_new("chart");
	wref_signal_connect(m->changed, table, view_refresh);
	wref_signal_connect(m->changed, chart, view_refresh);
	/* subscribing the same (view, function) twice is refused */
	if (wref_signal_connect(m->changed, chart, view_refresh) < 0)
		printf("chart is already subscribed\n");

	/* a WeakMethod: a callback bound weakly to the chart */
	wref_method *zoom = wref_method_new(chart, view_refresh);

	printf("two views:\n");
	update_from_worker(m);

	printf("the chart is closed (no unsubscribe):\n");
	wref_release(chart);
	printf("subscribers left: %zu\n", wref_signal_len(m->changed));
	update_from_worker(m);
	if (wref_method_call(zoom, m) < 0)
		printf("the zoom callback's view is gone: nothing called\n");
	wref_release(zoom);

	printf("the table is closed:\n");
	wref_release(table);
	update_from_worker(m);

	wref_release(m);
	return 0;
}
