"""Judging what was learned: policies in the real simulator, labeling and generation analyses
(the only code besides `collect` allowed to read the oracle), and the results reports."""
