"""``python -m bench.prepare_ab --base REV``: the CPU cost of preparing events, two versions.

Preparation (limits, diff, masking, leaf hash) is the Python work of every write before
the database sees it. This measures it in-process for *REV* ("base", checked out with
``git archive`` into a temporary directory) and the working tree ("head"): one long-lived
interpreter per side, asked in turns to prepare the same events once, many times, so that
both sides see the same machine load (this host is shared; figures drift by half between
minutes) and each pair of measurements can be compared directly.

* ``bulk``: ``prepare_events`` over 1,000 events of the ingest workload at once;
* ``single``: the same 1,000 events one at a time, as ``POST /api/v1/logs`` prepares them.
  On the head side each event first takes its tenant's rules from the per-process cache,
  exactly as ``Ingest.create`` does; base has no such lookup.

``masking`` is the masking step alone (``mask_json`` on metadata, before and after,
``mask_text`` on message and user agent, default rules) for the same 1,000 events, with
both versions of ``domain/masking.py`` (which imports nothing of the package) loaded into
this one interpreter: the finest comparison of the part of the default path that changed.

On the head side only, the same 1,000 events with three e-mail addresses each (a changed
address in ``before``/``after``, one in the message) are prepared with the redacting rules
and with rules that pseudonymise addresses and cards (``pii_redact``,
``pii_pseudonymise``), also in turns.

The report gives per scenario and side the median and minimum over ``--pairs`` turns (ms
for 1,000 events), and the median of the paired ratios head/base (pseudonymise/redact)
with its interquartile range. Results go to ``bench/results/prepare_ab.json``; nothing
here runs in ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 1000


def _drafts(pii: bool) -> list[Any]:
    from auditline.api.schemas import EventIn
    from bench.workload import event

    rng = random.Random(16)
    now = datetime.now(UTC)
    bodies = [event(rng, now) for _ in range(EVENTS)]
    if pii:
        for n, body in enumerate(bodies):
            old, new = f"user{n}@example.com", f"user{n}.new@example.org"
            body["before"] = {**body.get("before", {}), "email": old}
            body["after"] = {**body.get("after", {}), "email": new}
            body["message"] = f"{body['message']}; notified {new}"
    return [EventIn.model_validate(body) for body in bodies]


def _once(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def child(side: str) -> None:
    """Serve one side: read a scenario name per line, answer its time in ms."""
    from auditline.config import IngestSettings
    from auditline.domain.tenants import TenantId
    from auditline.ingest.prepare import prepare_events

    tenant = TenantId("bench")
    limits = IngestSettings()
    now = datetime.now(UTC)
    drafts = _drafts(pii=False)
    pii = _drafts(pii=True)  # on both sides, so both hold the same objects
    scenarios: dict[str, Callable[[], object]] = {
        "bulk": lambda: prepare_events(tenant, drafts, limits=limits, now=now)
    }

    if side == "base":

        def single() -> None:
            for draft in drafts:
                prepare_events(tenant, [draft], limits=limits, now=now, indexed_errors=False)

        scenarios["single"] = single
    else:
        from auditline.domain.masking import DEFAULT_RULES, MaskingRules
        from auditline.domain.masking_settings import masking_settings
        from auditline.ingest.tenant_rules import TenantRules

        async def load(_: TenantId) -> MaskingRules:
            return DEFAULT_RULES

        cache = TenantRules(load, ttl_seconds=3600)
        asyncio.run(cache.get(tenant))  # as after the tenant's first request

        def single_cached() -> None:
            for draft in drafts:
                rules = cache.cached(tenant)
                assert rules is not None  # noqa: S101
                prepare_events(
                    tenant, [draft], limits=limits, now=now, rules=rules, indexed_errors=False
                )

        scenarios["single"] = single_cached
        key = os.urandom(32)
        redact = masking_settings({}).rules(key)
        pseudonymise = masking_settings(
            {"masking": {"email": "pseudonymise", "card": "pseudonymise"}}
        ).rules(key)
        scenarios["pii_redact"] = lambda: prepare_events(
            tenant, pii, limits=limits, now=now, rules=redact
        )
        scenarios["pii_pseudonymise"] = lambda: prepare_events(
            tenant, pii, limits=limits, now=now, rules=pseudonymise
        )
    for fn in scenarios.values():
        fn()  # warm: caches of secret keys, regexes, imports
    # As the service does after start-up (docs/architecture.md): what exists now is left out
    # of collections, so a side's extra modules do not make its collections longer.
    gc.collect()
    gc.freeze()
    print("ready", flush=True)
    for line in sys.stdin:
        print(f"{_once(scenarios[line.strip()]):.4f}", flush=True)


def _masking_pairs(sources: dict[str, Path], pairs: int) -> tuple[list[float], list[float]]:
    """``masking`` (see the module docstring), both versions in this interpreter."""
    from bench.workload import event

    rng = random.Random(16)
    now = datetime.now(UTC)
    bodies = [event(rng, now) for _ in range(EVENTS)]

    def work(side: str) -> Callable[[], None]:
        path = sources[side] / "auditline" / "domain" / "masking.py"
        spec = importlib.util.spec_from_file_location(f"_{side}_masking", path)
        assert spec is not None  # noqa: S101
        assert spec.loader is not None  # noqa: S101
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        mask_json, mask_text, rules = module.mask_json, module.mask_text, module.DEFAULT_RULES

        def run() -> None:
            for body in bodies:
                mask_json(body["metadata"], rules)
                if "before" in body:
                    mask_json(body["before"], rules)
                    mask_json(body["after"], rules)
                mask_text(body["message"], rules)
                mask_text(body["user_agent"], rules)

        run()
        return run

    base, head = work("base"), work("head")
    a, b = [], []
    for turn in range(pairs):
        order = [(base, a), (head, b)] if turn % 2 == 0 else [(head, b), (base, a)]
        for fn, into in order:
            into.append(_once(fn))
    return a, b


def _checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


class _Side:
    def __init__(self, side: str, src: Path) -> None:
        self.src = src
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.prepare_ab", "--child", side],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        assert self.process.stdout is not None  # noqa: S101
        assert self.process.stdout.readline().strip() == "ready"  # noqa: S101

    def measure(self, scenario: str) -> float:
        assert self.process.stdin is not None  # noqa: S101
        assert self.process.stdout is not None  # noqa: S101
        self.process.stdin.write(scenario + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None  # noqa: S101
        self.process.stdin.close()
        self.process.wait()


def _summary(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return {"median": median, "q1": q1, "q3": q3, "min": min(values)}


def _pairs(
    first: _Side, second: _Side, scenario: tuple[str, str], pairs: int
) -> tuple[list[float], list[float]]:
    """*pairs* turns, each measuring both sides, the side going first alternating."""
    a, b = [], []
    for turn in range(pairs):
        if turn % 2 == 0:
            a.append(first.measure(scenario[0]))
            b.append(second.measure(scenario[1]))
        else:
            b.append(second.measure(scenario[1]))
            a.append(first.measure(scenario[0]))
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="git revision to compare the working tree with")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--child", choices=["base", "head"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if not args.base:
        parser.error("--base REV is required")
    report: dict[str, Any] = {"base": args.base, "pairs": args.pairs, "events": EVENTS}
    with tempfile.TemporaryDirectory() as tmp:
        base = _Side("base", _checkout(args.base, Path(tmp)))
        head = _Side("head", ROOT / "src")
        try:
            comparisons = [
                ("bulk", base, head, ("bulk", "bulk")),
                ("single", base, head, ("single", "single")),
                ("pseudonymise", head, head, ("pii_redact", "pii_pseudonymise")),
            ]
            for name, first, second, scenario in comparisons:
                a, b = _pairs(first, second, scenario, args.pairs)
                report[name] = {
                    scenario[0] if first is second else "base": _summary(a),
                    scenario[1] if first is second else "head": _summary(b),
                    "ratio": _summary([y / x for x, y in zip(a, b, strict=True)]),
                }
            a, b = _masking_pairs({"base": base.src, "head": head.src}, args.pairs)
            report["masking"] = {
                "base": _summary(a),
                "head": _summary(b),
                "ratio": _summary([y / x for x, y in zip(a, b, strict=True)]),
            }
        finally:
            base.close()
            head.close()
    out = ROOT / "bench" / "results" / "prepare_ab.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for name in ("bulk", "single", "masking", "pseudonymise"):
        for label, figure in report[name].items():
            unit = "" if label == "ratio" else " ms"
            spread = f"IQR {figure['q1']:.3f}-{figure['q3']:.3f}  min {figure['min']:.3f}"
            print(f"{name:12} {label:17} median {figure['median']:7.3f}{unit}  {spread}")


if __name__ == "__main__":
    main()
