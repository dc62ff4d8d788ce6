/*
 * test_exit.c - helper for check_executor (rule 13): queues death callbacks
 * and returns from main while the executor is still busy.  Every callback
 * writes "cb <id>" to stdout; the test checks each id appears exactly once.
 *
 * usage: test_exit [return|shutdown|exit-thread]
 *   return      - return from main with callbacks queued (default)
 *   shutdown    - call wref_shutdown() first, then return (nothing twice)
 *   exit-thread - another thread calls exit(0) with callbacks queued
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wref.h"

#define N 500     /* independent callbacks */
#define CHAIN 100 /* callbacks whose run kills the next one's referent */

static const wref_type t = { .name = "exit-obj" };
static void *chain_obj[CHAIN + 1];

static void say(int id)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "cb %d\n", id);
	if (write(1, buf, (size_t)n) != n)
		_exit(3);
}

static void cb(wref_ref *r, void *arg)
{
	int id = (int)(intptr_t)arg;
	if (id == 0)
		usleep(100 * 1000); /* keep the rest queued at exit */
	say(id);
	wref_release(r); /* the user's ref, given to the callback */
}

static void chain_cb(wref_ref *r, void *arg)
{
	int i = (int)(intptr_t)arg;
	say(N + i);
	wref_release(r);
	if (i + 1 < CHAIN)
		wref_release(chain_obj[i + 1]); /* queues the next one */
}

static void *exit_thread(void *p)
{
	(void)p;
	exit(0);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "return";
	for (int i = 0; i < CHAIN; i++) {
		chain_obj[i] = wref_new(&t, 8);
		if (!wref_ref_new(chain_obj[i], chain_cb, (void *)(intptr_t)i))
			return 2;
	}
	for (int i = 0; i < N; i++) {
		void *o = wref_new(&t, 8);
		if (!o || !wref_ref_new(o, cb, (void *)(intptr_t)i))
			return 2;
		wref_release(o); /* queues cb i; the ref goes to cb */
		if (i == N / 2)
			wref_release(chain_obj[0]);
	}
	if (!strcmp(mode, "shutdown")) {
		wref_shutdown();
		say(-1); /* everything above ran before this line */
	} else if (!strcmp(mode, "exit-thread")) {
		pthread_t th;
		pthread_create(&th, NULL, exit_thread, NULL);
		for (;;)
			pause();
	}
	return 0;
}
