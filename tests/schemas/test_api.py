"""The pydantic API models agree with Braintrust's official OpenAPI spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from schemas.api import (
    Dataset,
    DataSummary,
    Experiment,
    FetchEventsRequest,
    InsertEventsResponse,
    Project,
    SummarizeDatasetResponse,
)

# Braintrust's official OpenAPI spec, copied here so the check never depends on a sibling checkout.
SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "braintrust-openapi.yaml"


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return dict(yaml.safe_load(SPEC.read_text())["components"]["schemas"])


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (Project, "Project"),
        (Experiment, "Experiment"),
        (Dataset, "Dataset"),
        (FetchEventsRequest, "FetchEventsRequest"),
        (InsertEventsResponse, "InsertEventsResponse"),
        (DataSummary, "DataSummary"),
        (SummarizeDatasetResponse, "SummarizeDatasetResponse"),
    ],
)
def test_model_fields_exist_in_the_spec_and_cover_its_required_ones(
    components: dict[str, Any], model: type[BaseModel], name: str
) -> None:
    schema = components[name]
    properties = set(schema.get("properties", {}))
    fields = set(model.model_fields)
    assert fields <= properties, f"{name}: not in the spec: {sorted(fields - properties)}"
    required_in_spec = set(schema.get("required", []))
    required_in_model = {n for n, f in model.model_fields.items() if f.is_required()}
    assert required_in_spec <= fields, f"{name}: spec fields missing: {sorted(required_in_spec - fields)}"
    # A field the spec requires may still be optional here only where we never rely on it.
    assert required_in_model <= required_in_spec, f"{name}: required here but optional in the spec"
