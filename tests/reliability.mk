## reliability.mk: filled in by its area
