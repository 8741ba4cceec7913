"""What a pipeline run or a `churn` command prints: libraries' noise out, hints right.

Why: a demo run printed dozens of lines that tell the user nothing or the wrong
thing, and hid the lines that matter:

- Feast logs "Registry cache expired, so refreshing" at INFO on every registry read
  that bypasses its cache (Feast 0.49's registry getters default to
  allow_cache=False, so one historical retrieval logs it about ten times, whatever
  cache_ttl_seconds says): dropped, since nothing has expired;
- ZenML suggests `zenml login --local` to see runs, which needs a local ZenML
  server that the laptop path does not run: replaced by commands that work here;
- ZenML announces the user, the stack and each stack component before every run:
  the five pipelines of a demo printed the same six lines five times. One line per
  run remains, naming the pipeline and its stack (RunBanner);
- transformers (imported by alibi-detect for its text detectors, unused here)
  announces that no deep-learning framework is installed; alibi-detect logs each
  file it writes when saving a detector, and each config field it resolves when
  loading one (~30 lines per drift pipeline run): dropped;
- a library's warning is shown once per message, as one line naming the library,
  instead of Python's "file:line: Category: text" plus the offending source line.

install() is idempotent and is called by the pipelines (when ZenML compiles them,
before the run starts) and by the churn CLI; importing this module changes nothing.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

RUNS_HINT = (
    "Runs of this checkout: `zenml pipeline runs list` (with .venv activated) and the "
    "MLflow UI: `make mlflow-ui`"
)
ZENML_RUN_LOGGER = "zenml.pipelines.pipeline_definition"
_PIPELINE_NAMED = re.compile(
    r"^(?:Registered new pipeline: |Caching is disabled by default for )`?(?P<name>[\w.-]+?)`?\.?$"
)
_STACK_NAMED = re.compile(r"^Using stack: `?(?P<name>[^`]+)`?$")
_COMPONENT = re.compile(r"^  [a-z_]+: `?[^`]+`?$")


@dataclass(frozen=True)
class Rule:
    """Records of `logger` whose message starts with `prefix`: dropped, or replaced."""

    logger: str
    prefix: str
    replacement: str | None = None


RULES: tuple[Rule, ...] = (
    Rule("feast.infra.registry.registry", "Registry cache expired"),
    Rule("feast.infra.registry.caching_registry", "Registry cache expired"),
    Rule("transformers", "None of PyTorch, TensorFlow"),
    Rule("alibi_detect.saving.saving", "Writing config to"),
    Rule("alibi_detect.saving.saving", "finished saving"),
    # loading a detector (the drift pipeline, serving): ~30 INFO lines per load
    *(
        Rule("alibi_detect.saving.loading", prefix)
        for prefix in (
            "Validated unresolved config",
            "Validated resolved config",
            "Instantiating detector",
            "Finished loading detector",
            "Instantiated drift detector",
            "Loaded config file from",
            "Resolving config field",
            "Successfully resolved registry entry",
        )
    ),
)


class RuleFilter(logging.Filter):
    """A logging filter applying the rules of one logger (logger filters do not see
    records propagated from child loggers, so each rule names its exact logger)."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        super().__init__()
        self.rules = rules

    def filter(self, record: logging.LogRecord) -> bool:
        """False drops the record; a replacement rewrites its message in place."""
        message = record.getMessage()
        for rule in self.rules:
            if message.startswith(rule.prefix):
                if rule.replacement is None:
                    return False
                record.msg, record.args = rule.replacement, None
        return True


class RunBanner(logging.Filter):
    """ZenML's pre-run banner as one line per run: `<pipeline> runs on ZenML stack
    `<stack>`...`, and the runs hint naming the pipeline, so a demo's five runs print
    five different lines instead of the same banner five times. Each `zenml pipeline
    run` is its own process, so the pipeline name seen last is the one running."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline = "the pipeline"

    def filter(self, record: logging.LogRecord) -> bool:
        """False drops the record; the stack line and the runs hint are rewritten."""
        message = record.getMessage()
        named = _PIPELINE_NAMED.match(message)
        if named:
            self.pipeline = named["name"]
            return True
        if message.startswith("Using user:") or _COMPONENT.match(message):
            return False
        stack = _STACK_NAMED.match(message)
        if stack:
            record.msg = (
                f"{self.pipeline} runs on ZenML stack `{stack['name']}` "
                f"(its components: `zenml stack describe {stack['name']}`)"
            )
            record.args = None
        elif message.startswith("You can visualize your pipeline runs"):
            record.msg, record.args = f"{self.pipeline}: {RUNS_HINT}", None
        return True


class OnceInWords:
    """A warnings.showwarning replacement: each message once, as one line in words."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.seen: set[tuple[str, str]] = set()

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """Print `<library> warns (<Category>): <message>` unless already printed."""
        key = (category.__name__, str(message))
        if key in self.seen:
            return
        self.seen.add(key)
        stream = file or self.stream or sys.stderr
        stream.write(f"{source_package(filename)} warns ({category.__name__}): {message}\n")


def source_package(filename: str) -> str:
    """The top-level package a file belongs to (its folder under site-packages), else
    the file's name: who is warning, without the source line."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = parts.index(marker)
            if index + 1 < len(parts):
                return Path(parts[index + 1]).stem
    return Path(filename).name


def install() -> None:
    """Attach the rule filters to their loggers and show warnings once, in words."""
    by_logger: dict[str, tuple[Rule, ...]] = {}
    for rule in RULES:
        by_logger[rule.logger] = (*by_logger.get(rule.logger, ()), rule)
    for name, rules in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, RuleFilter) for f in logger.filters):
            logger.addFilter(RuleFilter(rules))
    run_logger = logging.getLogger(ZENML_RUN_LOGGER)
    if not any(isinstance(f, RunBanner) for f in run_logger.filters):
        run_logger.addFilter(RunBanner())
    if not isinstance(warnings.showwarning, OnceInWords):
        warnings.showwarning = OnceInWords()
