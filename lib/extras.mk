## extras.mk: filled in by its area
