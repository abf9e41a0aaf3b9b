"""Result rows → tables (Table 1 layout) and a static HTML report. pandas/pyarrow only; no torch, no ray."""
