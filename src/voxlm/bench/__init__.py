"""Speed benchmarks of the real inference path (``voxlm bench``).

``stages`` times each stage of ``transcribe`` as users run it (audio decode, features, encoder,
projector, prefill, decode steps, aligner pass, DTW, words and confidence) through a timer the
pipeline is handed, so what is measured is the production code, not a copy of it. ``peers``
sets VoxLM's stages beside the libraries users would otherwise reach for.
"""
