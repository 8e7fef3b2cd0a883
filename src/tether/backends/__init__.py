"""Model backends behind one small interface (`base`): scripted, upstream, embedded llama.cpp."""
