"""The stages, one module each (generate, train, evaluate, analyze, report; sample): a stage is a function from a
validated config to its output folder. Beside them: the command-line entry (cli), run tags (tags), threads and
memory (launch, resources); the contract they share (typed configs, skip/resume/refuse/replace, atomic writes and
locks) is core/'s."""
