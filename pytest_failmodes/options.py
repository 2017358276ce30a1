"""Option names, importable by tests and other plugins."""

FAILMODES = "--failmodes"
PER_TRACE = "--failmodes-per-trace"
REPORT = "--failmodes-report"
DATASET = "--failmodes-dataset"
MAX_EXAMPLES = "--failmodes-max-examples"


def dest(option: str) -> str:
    """``--failmodes-per-trace`` -> ``failmodes_per_trace``."""
    return option.lstrip("-").replace("-", "_")
