## extras.mk: WeakMethod, finalize, signal (the layer above the containers)
lib_libwref_core_la_SOURCES += \
	lib/method.c \
	lib/finalize.c \
	lib/signal.c
