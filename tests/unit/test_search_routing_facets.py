"""RoutedSearch and facets: the chosen backend answers; one that is unavailable hands them
to the primary, with the same watermark, when the configuration falls back."""

from __future__ import annotations

from typing import Any

import pytest

from auditline.search.backend import SearchUnavailable
from auditline.search.model import Count, Facet, FacetRequest, Facets, SearchQuery
from auditline.search.query import parse
from auditline.search.routing import RoutedSearch
from auditline.tenancy.scope import for_system

TENANT = for_system("acme", reason="unit test of routing")
REQUEST = FacetRequest(("action",), size=3)
TEXT = SearchQuery(q=parse("invoice"))


class Answering:
    """A backend that answers facets with its own name, and records the watermark."""

    def __init__(self, name: str, fails: type[Exception] | None = None) -> None:
        self.name = name
        self.fails = fails
        self.asked: list[int] = []

    async def facets(
        self, tenant: Any, query: SearchQuery, request: FacetRequest, *, watermark: int
    ) -> Facets:
        self.asked.append(watermark)
        if self.fails is not None:
            raise self.fails("no")
        return Facets([Facet("action", [Count(self.name, 1)])])


def routed(primary: Answering, text: Answering, *, fallback: bool) -> RoutedSearch:
    fallbacks: list[str] = []
    router = RoutedSearch(
        primary,  # type: ignore[arg-type]
        text=text,  # type: ignore[arg-type]
        fallback=fallback,
        on_fallback=fallbacks.append,
    )
    router.fallbacks = fallbacks  # type: ignore[attr-defined]
    return router


def answered_by(facets: Facets) -> str | None:
    return facets.facets[0].values[0].key


async def test_the_chosen_backend_answers_facets() -> None:
    primary, text = Answering("postgres"), Answering("opensearch")
    facets = await routed(primary, text, fallback=True).facets(TENANT, TEXT, REQUEST, watermark=7)
    assert answered_by(facets) == "opensearch"
    assert (primary.asked, text.asked) == ([], [7])


async def test_unavailable_facets_fall_back_only_when_configured() -> None:
    primary, text = Answering("postgres"), Answering("opensearch", SearchUnavailable)
    router = routed(primary, text, fallback=True)
    assert answered_by(await router.facets(TENANT, TEXT, REQUEST, watermark=7)) == "postgres"
    assert router.fallbacks == ["facets"]  # type: ignore[attr-defined]
    strict = routed(Answering("postgres"), Answering("opensearch", SearchUnavailable),
                    fallback=False)  # fmt: skip
    with pytest.raises(SearchUnavailable):
        await strict.facets(TENANT, TEXT, REQUEST, watermark=7)
