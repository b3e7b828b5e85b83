"""From scores to judged runs: the final ranking, ir-measures evaluation with comparisons and corrections,
and the interpolation sweep with cross-validation.

- `ranking`: depth, unscored tail, interpolation, normalization, tie-consistent output order.
- `measures`: ir-measures evaluation, paired tests, corrections, tables and tsv/csv/json reports.
- `fusion`: the interpolation grid, its cross-validated choice, and the stored scores it reads.
"""
