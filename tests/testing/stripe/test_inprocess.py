"""Without a server: the SDK's async client, and the ASGI app through httpx's ASGITransport."""

from __future__ import annotations

import httpx
import stripe

from upsync.testing.stripe import RunningStandin, Store, create_app, generate


async def test_the_async_sdk_pages_through_a_list(standin: RunningStandin, seed: int) -> None:
    generate(standin.store, customers=25, seed=seed)
    client = stripe.StripeClient(
        standin.api_key,
        base_addresses={"api": standin.url},
        max_network_retries=0,
        http_client=stripe.HTTPXClient(),
    )
    page = await client.v1.customers.list_async(params={"limit": 7})
    ids = [c.id async for c in page.auto_paging_iter()]
    assert ids == [c["id"] for c in standin.store.live("customer")]


async def test_the_app_serves_through_an_asgi_transport(seed: int) -> None:
    store = Store(seed=seed)
    generate(store, customers=5, seed=seed)
    app = create_app(store)
    transport = httpx.ASGITransport(app=app.asgi)
    headers = {"Authorization": "Bearer sk_test_inprocess"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://standin", headers=headers
    ) as http:
        page = (await http.get("/v1/customers", params={"limit": 2})).json()
        assert page["has_more"] is True and len(page["data"]) == 2
        made = await http.post("/v1/products", data={"name": "In-process"})
        assert made.status_code == 200 and made.json()["id"].startswith("prod_")
