"""The neural side: causal models, tasks, networks, DAS alignments and the interchange engine
that turn a network into the IIA data ``solver`` consumes."""
