"""Network definitions of restorer's own models (torch; import only where torch is wanted)."""
