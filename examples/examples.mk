## examples.mk: the seed scenarios of Python's weakref tutorials in C.
## Each is built by make and run by make check, its output compared with
## examples/NAME.expected (examples/check_examples.sh).
EXAMPLES = \
	examples/observer

noinst_PROGRAMS += $(EXAMPLES)
examples_observer_SOURCES = examples/observer.c
examples_observer_LDADD = lib/libwref.la -lpthread

TESTS += examples/check_examples.sh
EXTRA_DIST += examples/check_examples.sh $(EXAMPLES:=.expected)
