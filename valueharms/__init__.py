"""value-harms core: errors, file I/O, registries, Schwartz values, prompts, adapters, model loading and the CLI.

Everything here is shared by the VIM method (``vim/``), the benchmarks, the judges, the analysis and the demo;
nothing here imports those packages at module level.
"""
