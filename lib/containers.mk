## containers: the weak-entry table layer and the weak containers
lib_libwref_core_la_SOURCES += \
	lib/table.h \
	lib/table.c \
	lib/valmap.c \
	lib/tier.h \
	lib/tier.c \
	lib/keymap.c \
	lib/set.c
