"""respx for the coach's model transport: ``respx.mock(using="coach")``.

respx's default mocker patches httpcore, which the coach's lean transport does not use;
its ``httpx`` mocker would also catch the test client's own requests to the app. This one
patches ``LeanTransport.handle_async_request``, the same seam the httpcore mocker uses,
so exactly the model API's requests are mocked. The transport itself is tested against
real sockets in tests/integration/test_transport.py."""

from __future__ import annotations

from typing import Any

import httpx
from respx.mocks import AbstractRequestMocker


class CoachTransportMocker(AbstractRequestMocker):
    name = "coach"
    targets = ["coach.transport.LeanTransport"]
    target_methods = ["handle_async_request"]

    @classmethod
    def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
        request: httpx.Request = kwargs["request"]
        return request

    @classmethod
    async def from_async_httpx_response(
        cls, httpx_response: httpx.Response, target: Any, **kwargs: Any
    ) -> httpx.Response:
        return httpx_response
