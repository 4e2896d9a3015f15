"""DynamoDB online store (boto3; credentials from the standard AWS chain: environment, profile, role).

Layout: one table per view, ``<prefix>.<view>``, hash key ``k`` (the key JSON), attributes ``ts``, ``cts``
(numbers), ``v`` (the value JSON), ``exp_ms`` (expiry, wall-clock ms) and ``exp`` (the same in seconds: the
table's TTL attribute, so DynamoDB removes expired items; reads filter on ``exp_ms`` because TTL deletion
lags). Watermarks: table ``<prefix>-watermarks`` (hash key ``view``; ``-`` cannot occur in a view name).

Writes are conditional PutItem / DeleteItem calls (``batch_write_item`` cannot carry a condition, and a
condition is what keeps an older event from overwriting a newer one when runs overlap), issued by a thread
pool per partition; throttling is retried with backoff by botocore's adaptive retry mode. Reads use
``batch_get_item`` and retry ``UnprocessedKeys`` with exponential backoff.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from featurelake.online.store import Entry, OnlineStore, Record, StoreConfig, WriteStats, batched

_THREADS = 16
_GET_BATCH = 100  # batch_get_item limit
_PUT_CONDITION = "attribute_not_exists(k) OR ts < :ts OR (ts = :ts AND cts <= :cts)"


class DynamoDBStore(OnlineStore):
    def __init__(self, config: StoreConfig):
        super().__init__(config)
        self.client = boto3.client(
            "dynamodb",
            region_name=config.dynamodb_region,
            endpoint_url=config.dynamodb_endpoint_url,
            config=Config(retries={"max_attempts": 10, "mode": "adaptive"}, max_pool_connections=_THREADS + 4),
        )
        self._known: set[str] = set()

    def _exists(self, table: str) -> bool:
        """Whether the table exists (existing ones cached: the read path asks once per table)."""
        if table in self._known:
            return True
        try:
            self.client.describe_table(TableName=table)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
        self._known.add(table)
        return True

    def table(self, view: str) -> str:
        return f"{self.config.dynamodb_table_prefix}.{view}"

    @property
    def watermark_table(self) -> str:
        return f"{self.config.dynamodb_table_prefix}-watermarks"

    def _create(self, name: str, key: str, ttl_attribute: str | None) -> None:
        try:
            self.client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            return
        self.client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        if ttl_attribute:
            self.client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
            )

    def prepare(self, view: str) -> None:
        self._create(self.watermark_table, "view", None)
        self._create(self.table(view), "k", "exp")

    def _apply(self, table: str, r: Record) -> str:
        try:
            if r.payload is None:
                self.client.delete_item(
                    TableName=table,
                    Key={"k": {"S": r.key}},
                    ConditionExpression="ts < :cutoff",
                    ExpressionAttributeValues={":cutoff": {"N": str(r.cutoff_us)}},
                )
                return "deleted"
            item = {"k": {"S": r.key}, "ts": {"N": str(r.ts)}, "cts": {"N": str(r.cts)}, "v": {"S": r.payload}}
            if r.exp_ms is not None:
                item["exp_ms"] = {"N": str(r.exp_ms)}
                item["exp"] = {"N": str(r.exp_ms // 1000 + 1)}
            self.client.put_item(
                TableName=table,
                Item=item,
                ConditionExpression=_PUT_CONDITION,
                ExpressionAttributeValues={":ts": {"N": str(r.ts)}, ":cts": {"N": str(r.cts)}},
            )
            return "written"
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return "skipped"
            raise

    def write(self, view: str, records: Iterable[Record]) -> WriteStats:
        table, stats = self.table(view), WriteStats()
        with ThreadPoolExecutor(_THREADS) as pool:
            for batch in batched(records, self.config.batch_size):
                for outcome in pool.map(lambda r: self._apply(table, r), batch):
                    setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats

    def _batch_get(self, request: dict) -> list[tuple[str, dict]]:
        """``batch_get_item`` with retry of UnprocessedKeys (exponential backoff with jitter)."""
        out, attempt = [], 0
        while request:
            resp = self.client.batch_get_item(RequestItems=request)
            out += [(table, item) for table, items in resp.get("Responses", {}).items() for item in items]
            request = resp.get("UnprocessedKeys") or {}
            if request:
                attempt += 1
                if attempt > 10:
                    raise RuntimeError("DynamoDB batch_get_item: keys still unprocessed after 10 retries")
                time.sleep(min(2.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0))
        return out

    def read_entries(self, requests: list[tuple[str, list[str]]]) -> list[list[Entry | None]]:
        tables = {self.table(view): self._exists(self.table(view)) for view, _ in requests}
        wanted = [(self.table(v), k) for v, keys in requests if tables[self.table(v)] for k in dict.fromkeys(keys)]
        found: dict[tuple[str, str], Entry] = {}
        for chunk in batched(wanted, _GET_BATCH):
            request: dict[str, dict] = {}
            for table, k in chunk:
                spec = request.setdefault(table, {"Keys": [], "ProjectionExpression": "k, v, ts, exp_ms"})
                spec["Keys"].append({"k": {"S": k}})
            for table, item in self._batch_get(request):
                exp_ms = int(item["exp_ms"]["N"]) if "exp_ms" in item else None
                found[(table, item["k"]["S"])] = Entry(item["v"]["S"], int(item["ts"]["N"]), exp_ms)
        return [[found.get((self.table(view), k)) for k in keys] for view, keys in requests]

    def get_doc(self, name: str) -> str | None:
        try:
            item = self.client.get_item(
                TableName=self.watermark_table, Key={"view": {"S": name}}, ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return item["doc"]["S"] if item else None

    def set_doc(self, name: str, doc: str) -> None:
        self.client.put_item(TableName=self.watermark_table, Item={"view": {"S": name}, "doc": {"S": doc}})

    def delete_doc(self, name: str) -> None:
        try:
            self.client.delete_item(TableName=self.watermark_table, Key={"view": {"S": name}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise

    def drop_namespace(self, namespace: str) -> int | None:
        """Delete the namespace's table (one call, however many items): 0 when there was none, else None (DynamoDB
        counts a table's items only every few hours)."""
        table = self.table(namespace)
        self._known.discard(table)
        try:
            self.client.delete_table(TableName=table)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return 0
            raise
        self.client.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        return None

    def close(self) -> None:
        self.client.close()
