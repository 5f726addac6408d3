"""``/metrics``: Prometheus text with the stream, consumer and latency series."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import Source, create_consumer


def _value(text: str, name: str, **labels: str) -> float:
    """The sample of ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not m or m[1] != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m[2] or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m[3])
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


async def test_metrics_count_written_delivered_acked_redelivered_and_pending(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    await source.put("stripe:customer", {"id": "cus_1"}, {"id": "cus_2"}, {"id": "cus_3"})
    nexts = "/v1/http-consumers/workers/next"
    first = (await http.post(nexts, json={"batch_size": 2})).json()["data"]
    tokens = [m["ack_token"] for m in first]
    await http.post("/v1/http-consumers/workers/nack", json={"ack_tokens": tokens[:1]})
    await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": tokens[1:]})
    again = (await http.post(nexts, json={"batch_size": 1})).json()["data"]
    assert [m["record"]["upstream_id"] for m in again] == [first[0]["record"]["upstream_id"]]

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _value(text, "upsync_records_written_total", stream="main") == 3
    assert _value(text, "upsync_stream_records", stream="main") == 3
    assert _value(text, "upsync_messages_delivered_total", consumer="workers") == 3
    assert _value(text, "upsync_messages_redelivered_total", consumer="workers") == 1
    assert _value(text, "upsync_messages_acked_total", consumer="workers") == 1
    assert _value(text, "upsync_messages_nacked_total", consumer="workers") == 1
    assert _value(text, "upsync_consumer_pending", consumer="workers") == 1
    assert _value(text, "upsync_consumer_ack_pending", consumer="workers") == 1
    assert _value(text, "upsync_consumer_dead", consumer="workers") == 0
    route = "/v1/http-consumers/{id_or_name}/next"
    count = _value(
        text, "upsync_http_request_duration_seconds_count", route=route, method="POST", status="200"
    )
    assert count == 2
    assert "cus_1" not in text  # ids of records never become labels
