## containers.mk: filled in by its area
