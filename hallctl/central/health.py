"""The hall's health, folded from what nodes publish: which nodes are lost or offline, which devices
are in fault or degraded, with the reason and since when. Pure (no I/O, clock injected); central
feeds it the retained node status, birth and device state topics and publishes
:meth:`HallHealth.document` retained on ``central/health`` whenever it changes.

A lost node's device states are the last it published before it went: they are not trusted, and
its devices are listed as ``unknown`` under the node's problem instead.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Mapping

VERSION = 1
#: device healths that make the hall's health not ok
PROBLEM_HEALTH = ("fault", "degraded", "unknown")


class HallHealth:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.nodes: dict[str, dict[str, Any]] = {}  # node -> {state, since, bd_seq}
        self.births: dict[str, list[str]] = {}  # node -> device ids
        self.devices: dict[tuple[str, str], dict[str, Any]] = {}  # (node, dev) -> state doc
        #: when what the document says last changed
        self.changed_at: str | None = None

    def _now(self) -> str:
        return self._clock().astimezone(timezone.utc).isoformat(timespec="milliseconds")

    def _changed(self, changed: bool) -> bool:
        if changed:
            self.changed_at = self._now()
        return changed

    def node_status(self, node: str, doc: Mapping[str, Any] | None, *, live: bool) -> bool:
        return self._changed(self._node_status(node, doc, live=live))

    def node_birth(self, node: str, doc: Mapping[str, Any] | None) -> bool:
        return self._changed(self._node_birth(node, doc))

    def device_state(self, node: str, device: str, doc: Mapping[str, Any] | None) -> bool:
        return self._changed(self._device_state(node, device, doc))

    def _node_status(self, node: str, doc: Mapping[str, Any] | None, *, live: bool) -> bool:
        """A node's status document (None: the retained topic was cleared). True if it changed
        what the hall's health says. A will with an older bd_seq than the birth is ignored."""
        if doc is None:
            return self._drop_node(node)
        state, bd_seq = str(doc.get("state", "unknown")), doc.get("bd_seq")
        old = self.nodes.get(node)
        if old is not None and state == "lost" and isinstance(bd_seq, int) and isinstance(old.get("bd_seq"), int) \
                and bd_seq < old["bd_seq"]:
            return False  # the late will of an older connection
        if old is not None and old["state"] == state:
            if bd_seq != old.get("bd_seq"):
                old["bd_seq"] = bd_seq
            return False
        # a live change happened now; a retained one at the time the document says
        since = self._now() if live else str(doc.get("ts") or self._now())
        self.nodes[node] = {"state": state, "since": since, "bd_seq": bd_seq}
        return True

    def _node_birth(self, node: str, doc: Mapping[str, Any] | None) -> bool:
        if doc is None:
            return self._drop_node(node)
        devices = [str(d.get("id")) for d in doc.get("devices", []) if isinstance(d, Mapping)]
        if self.births.get(node) == devices:
            return False
        self.births[node] = devices
        for key in [k for k in self.devices if k[0] == node and k[1] not in devices]:
            del self.devices[key]
        return True

    def _device_state(self, node: str, device: str, doc: Mapping[str, Any] | None) -> bool:
        key = (node, device)
        if doc is None:
            return self.devices.pop(key, None) is not None
        state = {k: doc.get(k) for k in ("available", "health", "reason", "since")}
        if self.devices.get(key) == state:
            return False
        self.devices[key] = state
        return True

    def _drop_node(self, node: str) -> bool:
        changed = self.nodes.pop(node, None) is not None or self.births.pop(node, None) is not None
        for key in [k for k in self.devices if k[0] == node]:
            del self.devices[key]
            changed = True
        return changed

    def document(self) -> dict[str, Any]:
        """What ``central/health`` says (docs/topics.md, "Hall health")."""
        problems: list[dict[str, Any]] = []
        counts = {"nodes": len(self.nodes), "nodes_ready": 0, "devices": 0, "devices_ok": 0}
        for node in sorted(self.nodes):
            info = self.nodes[node]
            devices = self.births.get(node, sorted(d for n, d in self.devices if n == node))
            counts["devices"] += len(devices)
            if info["state"] != "ready":
                problems.append({"node": node, "device": None, "health": info["state"],
                                 "reason": _node_reason(info["state"]), "since": info["since"],
                                 "devices": devices})
                continue
            counts["nodes_ready"] += 1
            for device in devices:
                state = self.devices.get((node, device))
                if state is None:
                    problems.append({"node": node, "device": device, "health": "unknown",
                                     "reason": "no state published yet", "since": None})
                elif state.get("health") in PROBLEM_HEALTH or not state.get("available"):
                    problems.append({"node": node, "device": device, "health": state.get("health"),
                                     "reason": state.get("reason") or "", "since": state.get("since")})
                else:
                    counts["devices_ok"] += 1
        return {"v": VERSION, "ok": not problems, "problems": problems, "counts": counts, "ts": self.changed_at}


def _node_reason(state: str) -> str:
    return {"lost": "connection lost (power, network or crash); its devices are not reachable",
            "offline": "stopped cleanly"}.get(state, f"status {state}")
