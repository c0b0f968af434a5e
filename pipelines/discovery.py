"""Keeping one partition per Braintrust object: the partitions a listing of the catalog adds and removes.

Both the discovery sensor and the catalog asset compare what the API lists
with the instance's partitions. A new object gets a partition under its key, a
deleted one loses its partition, and a renamed one moves: the old key goes, the
new one comes (its rows stay, since the warehouse keys them by object id).
"""

from dataclasses import dataclass

import dagster as dg

from connector.destinations.base import ObjectRef
from connector.sync.catalog import Catalog
from pipelines.objects import listed_keys
from pipelines.tables import BraintrustSpecs, EventAssets

PartitionsRequest = dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest


@dataclass(frozen=True)
class PartitionChanges:
    """How one event table's partitions differ from the catalog.

    Args:
        assets: the event table.
        listed: every listed object, by key.
        added: the listed objects without a partition, by key.
        removed: keys of partitions whose object is no longer listed under them.
    """

    assets: EventAssets
    listed: dict[str, ObjectRef]
    added: dict[str, ObjectRef]
    removed: list[str]

    def requests(self) -> list[PartitionsRequest]:
        """The sensor requests that make the change."""
        requests: list[PartitionsRequest] = []
        if self.added:
            requests.append(self.assets.partitions.build_add_request(list(self.added)))
        if self.removed:
            requests.append(self.assets.partitions.build_delete_request(self.removed))
        return requests

    def apply(self, instance: dg.DagsterInstance) -> None:
        """Make the change in the instance directly."""
        if self.added:
            instance.add_dynamic_partitions(self.assets.partitions_name, list(self.added))
        for key in self.removed:
            instance.delete_dynamic_partition(self.assets.partitions_name, key)


def partition_changes(
    specs: BraintrustSpecs, catalog: Catalog, instance: dg.DagsterInstance
) -> list[PartitionChanges]:
    """Per event table, the partitions to add and remove so that there is one per listed object."""
    listed = listed_keys(catalog)
    changes = []
    for assets in specs.events:
        known = set(instance.get_dynamic_partitions(assets.partitions_name))
        wanted = listed[assets.object_type]
        added = {key: ref for key, ref in wanted.items() if key not in known}
        changes.append(PartitionChanges(assets, wanted, added, sorted(known.difference(wanted))))
    return changes
