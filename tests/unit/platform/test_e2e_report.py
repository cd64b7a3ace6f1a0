"""bench/e2e.py's own arithmetic: which targets a run missed, and when a ramp's peak is only a floor.
The script is loaded from its file (bench/ is not a package); nothing is started or timed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from signpost.platform.loadgen import Attempt, LoadResult

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "e2e.py"


@pytest.fixture(scope="module")
def e2e() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_e2e", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_missed_targets_lists_each_missed_one_with_its_figure_and_ratio(e2e: ModuleType) -> None:
    report = e2e.Report()
    report.add("intake peak", "120", "900 durable writes/s", 120 / 900, ">= 0.80", False)
    report.add("p99 at half peak", "20.0 ms", target="< 50 ms", met=True)
    report.add("submit -> counted p99", "800 ms", target="< 500 ms", met=False)
    report.add("a figure with no target", "5")
    assert e2e.missed_targets(report) == [
        "- intake peak: 120, target >= 0.80 (ratio 0.13 to 900 durable writes/s)",
        "- submit -> counted p99: 800 ms, target < 500 ms",
    ]


def step(rate: float, accepted: int, duration_s: float = 1.0) -> LoadResult:
    result = LoadResult(rate=rate, duration_s=duration_s)
    result.attempts = [Attempt(i / rate, 0.001, 201, None) for i in range(accepted)]
    return result


def test_a_ramp_that_kept_up_at_its_ceiling_gives_its_peak_as_at_least(e2e: ModuleType) -> None:
    kept_up = [step(10, 10), step(20, 20)]
    assert e2e.hit_ceiling(kept_up, ceiling=30)
    assert e2e.peak_figure(kept_up, 30).startswith("≥ ")
    saturated = [step(10, 10), step(20, 12)]
    assert not e2e.hit_ceiling(saturated, ceiling=30)
    assert not e2e.peak_figure(saturated, 30).startswith("≥")
    assert not e2e.hit_ceiling(kept_up, ceiling=1000)  # the next step was allowed: it saturated there


def test_slots_never_sent_stop_the_ramp_counting_it_as_kept_up(e2e: ModuleType) -> None:
    late = step(20, 20)
    late.not_sent = 5
    assert not e2e.hit_ceiling([step(10, 10), late], ceiling=30)


def test_failures_are_broken_down_by_status(e2e: ModuleType) -> None:
    result = step(10, 2)
    result.attempts += [Attempt(0.0, 10.0, 0, None, timed_out=True), Attempt(0.0, 0.001, 503, None)]
    assert e2e.by_status(result) == "0: 1, 503: 1"
    assert e2e.by_status(step(10, 2)) == "none"


def test_lag_growth_with_too_few_samples_is_not_measured_and_listed(e2e: ModuleType) -> None:
    report = e2e.Report()
    e2e.lag_growth_row(report, 100.0)  # no samples at all: the lag sampler never got a reading
    (row,) = report.rows
    assert row.met == "not measured" and not row.missed
    assert e2e.missed_targets(report) == [f"- {row.figure}: {row.value}, target no growth (not measured)"]


def test_lag_growth_is_judged_on_enough_samples(e2e: ModuleType) -> None:
    report = e2e.Report()
    report.lag = [(float(t), {"routing": 0}) for t in range(6)]
    e2e.lag_growth_row(report, 100.0)
    report.lag = [(float(t), {"routing": 100 * t}) for t in range(6)]
    e2e.lag_growth_row(report, 100.0)
    assert [row.met for row in report.rows] == ["yes", "**no**"]
