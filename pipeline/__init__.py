"""What every stage of the pipeline shares: the one-line command-line entry, typed configs, the stage contract
(fingerprint -> skip, resume, refuse or replace), atomic writes and locks, and run tags. The stages themselves
live here too, one module each (generate, train, evaluate, analyze, report): a stage is a function from a
validated config to its output folder."""
