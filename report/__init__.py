"""The report stage (04_report.py): reads evaluated runs, writes figures with their CSVs, findings.md (a verdict
per finding of docs/task.md §9 by a fixed criterion) and REPRODUCTION.md.

runs.py      load results/<tag>/{run.json, inorder.csv, outorder.csv} and the run's metrics.jsonl
measures.py  accuracies of one run, averages over replicate runs, crossing steps, rank correlation
tables.py    which runs each figure uses, and the rows (the figure's CSV) it is drawn from
findings.py  the criteria and their verdicts
figures.py   the PNG figures, drawn from those rows alone
markdown.py  findings.md and REPRODUCTION.md
build.py     the whole stage: config -> files
"""
