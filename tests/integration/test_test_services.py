"""The Java test services answer their protocols, so a failing queue or archive test is
about our code and not about the harness."""

from __future__ import annotations

import uuid

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from opensearchpy import AsyncOpenSearch

from tests.services.fixtures import Endpoint


def _client(service: str, endpoint: Endpoint):  # type: ignore[no-untyped-def]
    return get_session().create_client(
        service,
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        # botocore >= 1.36 adds CRC checksums to every upload; S3-compatible servers such as
        # S3Proxy refuse the header, and S3 needs it only where the API requires it.
        config=AioConfig(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


async def test_elasticmq_delivers_a_message_once_deleted(elasticmq: Endpoint) -> None:
    async with _client("sqs", elasticmq) as sqs:
        url = (await sqs.create_queue(QueueName=f"harness-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
        await sqs.send_message(QueueUrl=url, MessageBody="hello")
        got = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
        assert [m["Body"] for m in got["Messages"]] == ["hello"]
        await sqs.delete_message(QueueUrl=url, ReceiptHandle=got["Messages"][0]["ReceiptHandle"])
        again = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        assert again.get("Messages", []) == []


async def test_s3proxy_stores_and_returns_an_object(s3_server: Endpoint) -> None:
    bucket = f"harness-{uuid.uuid4().hex[:8]}"
    async with _client("s3", s3_server) as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"cold")
        got = await s3.get_object(Bucket=bucket, Key="a/b.txt")
        async with got["Body"] as body:
            assert await body.read() == b"cold"


async def test_opensearch_indexes_and_finds_a_document(opensearch: Endpoint) -> None:
    index = f"harness-{uuid.uuid4().hex[:8]}"
    client = AsyncOpenSearch(hosts=[opensearch.url])
    try:
        info = await client.info()
        assert info["version"]["number"] == "2.19.6"
        await client.indices.create(index=index, body={"settings": {"number_of_replicas": 0}})
        await client.index(index=index, id="1", body={"word": "declined"}, refresh=True)
        # The analysers the backend's template needs are on the classpath.
        analysed = await client.indices.analyze(
            body={"tokenizer": "standard",
                  "filter": ["lowercase", {"type": "snowball", "language": "English"}],
                  "text": "Declined"}
        )  # fmt: skip
        assert [t["token"] for t in analysed["tokens"]] == ["declin"]
        found = await client.search(index=index, body={"query": {"match": {"word": "declined"}}})
        assert [h["_id"] for h in found["hits"]["hits"]] == ["1"]
    finally:
        await client.indices.delete(index=index, ignore_unavailable=True)
        await client.close()
