"""The report stage (04_report.py): reads evaluated runs, writes a general report (one figure of any metric against
any config key, no verdicts) or the paper report (figures with their CSVs, findings.md with a verdict per finding of
docs/task.md §9 by a fixed criterion, REPRODUCTION.md).

runs.py      load results/<tag>/{run.json, inorder.csv, outorder.csv, metrics.jsonl, analysis/summary.json}
stats.py     the Student-t interval over replicate runs (mean_ci)
estimates.py a quantity's mean and interval over replicates, and a criterion judged at the interval's ends
measures.py  accuracies of one run at one step; replicates read at a common step (Point); crossings, ranks
criteria.py  the verdict thresholds (config `criteria`), typed: what the findings read
verdicts.py  verdict words; the fit gate, the seeds gate, criteria -> verdict with a one-line reason
tables.py    which runs each paper figure uses, and the rows (the figure's CSV) it is drawn from
dynamics.py  figure 4 and finding 5's panels and controls, decomposed by learning_order, and their CSV rows
findings.py  the findings and their criteria (FINDINGS: Context -> Finding)
mechanism.py finding 7's claims on 05_analyze.py's numbers (activation patching included), over replicates
learning_order.py  finding 5 without compounding (per-step accuracies, residuals, slope criterion and gates)
general.py   the general report's figure rows: a metric against a config key, lines by other keys
overview.py  the runs table every report writes (runs.csv)
figures.py   the PNG figures, drawn from those rows alone
markdown.py  findings.md, report.md and REPRODUCTION.md
"""
