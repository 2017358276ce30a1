"""Option names, importable by tests and other plugins."""

FAILMODES = "--failmodes"
PER_TRACE = "--failmodes-per-trace"
REPORT = "--failmodes-report"
DATASET = "--failmodes-dataset"
MAX_EXAMPLES = "--failmodes-max-examples"
CACHE_DIR = "--failmodes-cache-dir"
NO_CACHE = "--failmodes-no-cache"
REFRESH = "--failmodes-refresh"
MAX_CONCURRENCY = "--failmodes-max-concurrency"
TIMEOUT = "--failmodes-timeout"
MAX_RETRIES = "--failmodes-max-retries"
MODEL_WORKERS = "--failmodes-model-workers"
BATCH = "--failmodes-batch"
SAVE_TRACES = "--failmodes-save-traces"
BASELINE = "--failmodes-baseline"
SAVE_BASELINE = "--failmodes-save-baseline"
STRICT_BASELINE = "--failmodes-strict-baseline"
CORRECTION = "--failmodes-correction"
#: the corrections a user can pick (regression.CORRECTIONS adds "none", for calibration only)
CORRECTION_CHOICES = ("tarone-holm", "holm", "bh")
DEFAULT_CORRECTION = "tarone-holm"
ALPHA = "--failmodes-alpha"
MIN_INCREASE = "--failmodes-min-increase"
MARKDOWN = "--failmodes-markdown"
HTML = "--failmodes-html"
CALIBRATE = "--failmodes-calibrate"
HISTORY = "--failmodes-history"
TABLE = "--failmodes-table"
#: which cohort rows the terminal summary lists under its one row per mode
TABLE_CHOICES = ("breached", "gated", "all")
DEFAULT_TABLE = "breached"
SORT = "--failmodes-sort"
#: how modes, and cohorts within a mode, are ordered (breached ones first)
SORT_CHOICES = ("rate", "delta", "name")
DEFAULT_SORT = "rate"
#: where --failmodes-save-baseline writes when given no path (relative to the rootdir)
DEFAULT_BASELINE = ".failmodes/baseline.json"


def dest(option: str) -> str:
    """``--failmodes-per-trace`` -> ``failmodes_per_trace``."""
    return option.lstrip("-").replace("-", "_")


def choice(what: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a usage error naming ``what`` (an option or an ini key)."""
    if value in choices:
        return value
    import pytest

    from .errors import did_you_mean

    raise pytest.UsageError(f"{what} takes one of {', '.join(choices)}, got {value!r}{did_you_mean(value, choices)}")
