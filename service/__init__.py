"""The part users touch: the command line (``ccm``), reports and plots; Ray execution and
job submission build on it."""
