"""What the Daglo end-to-end tests share: a gateway started against the test's fake Daglo."""

from __future__ import annotations

import pytest

from tests.fakes.daglo import FakeDaglo
from tests.providers import helpers
from tests.providers.helpers import Start


@pytest.fixture
def start(vendor_gateway: Start, fake: FakeDaglo) -> Start:
    return helpers.gateway_starter(
        vendor_gateway, DAGLO_BASE_URL=fake.base_url, DAGLO_API_KEY=fake.api_key
    )
