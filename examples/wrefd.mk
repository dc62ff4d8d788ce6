## wrefd.mk: filled in by its area
