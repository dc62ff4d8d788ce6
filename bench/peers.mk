## peers.mk: filled in by its area
