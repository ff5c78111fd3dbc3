"""The report stage (04_report.py): reads evaluated runs, writes a general report (one figure of any metric against
any config key, no verdicts) or the paper report (figures with their CSVs, findings.md with a verdict per finding of
docs/task.md §9 by a fixed criterion, REPRODUCTION.md).

runs.py            reading runs: results/<tag>/{run.json, inorder.csv, outorder.csv, metrics.jsonl, analysis/};
                   a run's accuracies at one step; the runs table (runs.csv)
stats.py           statistics: intervals over replicates (Estimate: an accuracy's inside [0, 1], a difference of two
                   settings paired by seed or Welch's), a criterion judged at the interval's ends (Check), replicates
                   read at a common step (Group, Point), crossings and ranks
verdicts.py        the criteria (config `criteria`, typed), verdict words, the fit and seeds gates, the Finding record
figure_rows.py     which runs each paper figure uses, and the rows (the figure's CSV) it is drawn from
findings.py        findings 1-4 and 6, and FINDINGS: every finding in order (Context -> Finding)
learning_order.py  finding 5: per-step decomposition, residual slope criterion and gates, figure 4 and its CSVs
mechanism.py       finding 7: claims on 05_analyze.py's numbers (activation patching included), over replicates
general_figure.py  the general report's figure: the keys it plots and its rows (a metric against a config key)
figures.py         the PNG figures, drawn from those rows alone
markdown.py        findings.md, report.md and REPRODUCTION.md: the setting (from the runs), verdicts with their
                   scope, the runs and points tables
"""
