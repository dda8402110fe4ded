"""On-demand benchmarks of proofrecon against the targets in the README's "Figures" (`make bench`;
not `make test`).

Every benchmark runs the baseline it is compared with in the same run and reports the ratio: the
machines are shared and noisy, so an absolute figure alone says little. See bench/__main__.py.
"""
